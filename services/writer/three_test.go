package writer_test

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// Three writer processes share the durable consumer. Under live load one
// of them, which has stored rows and holds a batch, is SIGKILLed; the two
// others carry on and take its unacknowledged messages when AckWait (8 s
// here) runs out. Every published touchpoint is stored once: counted by
// unique (source, id), and printed.
func TestThreeWritersShareTheConsumerOneKilledUnderLoad(t *testing.T) {
	e := sharedEnv(t)
	const n, chunk = 30_000, 500
	vars := map[string]string{"JOURNEY_WRITER_BATCH_SIZE": "1000", "JOURNEY_WRITER_BATCH_AGE": "100ms"}
	ws := []*proc{e.startProc("w0", vars), e.startProc("w1", vars), e.startProc("w2", vars)}
	waitFor(t, time.Minute, "three writers ready", func() bool {
		for _, w := range ws {
			if status(w.ops+"/readyz") != 200 {
				return false
			}
		}
		return true
	})
	at := time.Now().Add(-time.Hour)
	msgs := genMsgs(t, 0, n, at)
	victim := ws[1]
	var killed time.Time
	var written [3]float64
	stored, before := 0, uint64(0)
	// About 5 000 touchpoints/s; the kill comes a third of the way in,
	// once the victim has stored rows of its own.
	for start := 0; start < n; start += chunk {
		stored += e.publish(msgs[start:min(start+chunk, n)])
		if killed.IsZero() && start >= n/3 && metric(t, victim.ops, "journey_writer_rows_written_total") > 0 {
			for i, w := range ws {
				written[i] = metric(t, w.ops, "journey_writer_rows_written_total")
			}
			if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = time.Now()
			<-victim.done
			before = e.count("SELECT count() FROM events")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if killed.IsZero() {
		t.Fatal("the victim never stored a row before the load ended: the test proves nothing")
	}
	if stored != n {
		t.Fatalf("the stream stored %d of %d", stored, n)
	}
	waitFor(t, 2*time.Minute, "the two living writers to store everything", func() bool {
		return e.count("SELECT count() FROM events") >= n && e.drained("writer")
	})
	took := time.Since(killed)
	rows := e.count("SELECT count() FROM events")
	uniq := e.count("SELECT uniqExact(source, id) FROM events")
	lost, dup := int64(n)-int64(uniq), int64(rows)-int64(uniq)
	survivors := ""
	var redelivered float64
	for i, w := range ws {
		if w == victim {
			continue
		}
		survivors += fmt.Sprintf(" w%d %v,", i, metric(t, w.ops, "journey_writer_rows_written_total"))
		redelivered += metric(t, w.ops, "journey_writer_redelivered_total")
	}
	t.Logf("3 writers, w1 SIGKILLed under load after it wrote %v rows (w0 %v, w2 %v at the kill; %d rows in the table); "+
		"all stored %.1fs after the kill (AckWait 8s); rows written by the living:%s %v redeliveries seen; "+
		"%d published, %d rows, %d unique (source, id): %d lost, %d duplicated",
		written[1], written[0], written[2], before, took.Seconds(), survivors, redelivered, n, rows, uniq, lost, dup)
	e.assertExactlyOnce(n)
	if redelivered == 0 {
		t.Fatal("no message of the killed writer was redelivered: it held nothing when killed, the test proves nothing")
	}
}
