package writer_test

import (
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// A writer killed with SIGKILL under load leaves its held messages
// unacknowledged; they come back to its successor when AckWait runs out
// (the in-progress acks stopped with the process). With the default
// AckWait the time from the kill until everything accepted is stored is
// bounded by it, and printed.
func TestRecoveryAfterKillIsBoundedByAckWait(t *testing.T) {
	e := sharedEnv(t)
	const ackWait = 15 * time.Second // the default
	vars := map[string]string{"JOURNEY_WRITER_ACK_WAIT": ackWait.String(), "JOURNEY_WRITER_INSERT_TIMEOUT": "9s",
		"JOURNEY_WRITER_BATCH_AGE": "100ms", "JOURNEY_WRITER_BATCH_SIZE": "2000"}
	a := e.startProc("a", vars)
	waitFor(t, time.Minute, "the writer ready", func() bool { return status(a.ops+"/readyz") == 200 })

	// 1 000 events/s until the kill.
	var published atomic.Int64
	stop := make(chan struct{})
	loaded := make(chan struct{})
	at := time.Now().Add(-time.Hour)
	go func() {
		defer close(loaded)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i += 100 {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			e.publishFrom(i, 100, at)
			published.Add(100)
		}
	}()
	time.Sleep(4 * time.Second)
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	close(stop)
	<-loaded
	n := int(published.Load())
	held := n - int(e.count("SELECT count() FROM events"))
	b := e.startProc("b", vars)
	waitFor(t, ackWait+time.Minute, "the successor to store everything accepted", func() bool {
		return e.count("SELECT count() FROM events") >= uint64(n) && e.drained("writer")
	})
	took := time.Since(killed)
	e.assertExactlyOnce(n)
	t.Logf("writer killed with %d of %d accepted events not yet stored; its successor had everything %.1fs after the kill (AckWait %s); %v redelivered",
		held, n, took.Seconds(), ackWait, metric(t, b.ops, "journey_writer_redelivered_total"))
	if took > ackWait+15*time.Second {
		t.Fatalf("caught up %.1fs after the kill: more than AckWait %s plus 15s", took.Seconds(), ackWait)
	}
}

// publishFrom publishes gen's events from..from+n-1 and waits for their acks.
func (e *env) publishFrom(from, n int, at time.Time) {
	e.t.Helper()
	for i := from; i < from+n; i++ {
		ev := gen(e.t, i, at)
		f, err := e.js.PublishMsgAsync(factMsg(e.t, &ev))
		if err != nil {
			e.t.Error(err)
			return
		}
		select {
		case <-f.Ok():
		case err := <-f.Err():
			e.t.Error(err)
			return
		case <-time.After(10 * time.Second):
			e.t.Error("publish ack timeout")
			return
		}
	}
}
