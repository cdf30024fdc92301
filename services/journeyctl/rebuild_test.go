package journeyctl_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
	"github.com/klantreis/journey/services/journeyctl"
	"github.com/klantreis/journey/services/writer"
)

// touch makes event i of a family ("base", "live"): valid, of every kind,
// its time spread over the last three months so that several month
// partitions are compared.
func touch(t testing.TB, family string, i int, now time.Time) touchpoint.Event {
	t.Helper()
	common := touchpoint.Common{AccountID: "acc-" + strconv.Itoa(i%31), ContactID: "c-" + strconv.Itoa(i%61)}
	var p touchpoint.Typed
	switch i % 4 {
	case 0:
		common.Channel = "web"
		p = touchpoint.Visit{Common: common, URL: "https://shop.example/p/" + strconv.Itoa(i)}
	case 1:
		p = touchpoint.Quote{Common: common, QuoteID: "Q" + strconv.Itoa(i), Status: "sent", Amount: touchpoint.Amount{Cents: int64(i)}, Currency: "EUR"}
	case 2:
		p = touchpoint.Order{Common: common, OrderID: "O" + strconv.Itoa(i), Status: "placed", Amount: touchpoint.Amount{Cents: int64(i)}, Currency: "EUR", Items: 1}
	default:
		p = touchpoint.Survey{Common: common, SurveyID: "S" + strconv.Itoa(i), Score: int64(i % 11)}
	}
	at := now.Add(-time.Duration(i%90) * 24 * time.Hour).Add(-time.Duration(i) * time.Millisecond)
	e, err := touchpoint.New("rebuild-test", family+"-"+strconv.Itoa(i), "cust-"+strconv.Itoa(i%499), at, p)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func msgOf(t testing.TB, e *touchpoint.Event, withID bool) *nats.Msg {
	m, err := stream.NewFactMsg(e)
	if err != nil {
		t.Fatal(err)
	}
	if !withID {
		m.Header.Del(jetstream.MsgIDHeader)
	}
	return m
}

func (e *env) publishAll(msgs []*nats.Msg) {
	e.t.Helper()
	for start := 0; start < len(msgs); start += 2000 {
		var futs []jetstream.PubAckFuture
		for _, m := range msgs[start:min(start+2000, len(msgs))] {
			f, err := e.js.PublishMsgAsync(m)
			if err != nil {
				e.t.Fatal(err)
			}
			futs = append(futs, f)
		}
		for _, f := range futs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				e.t.Fatal(err)
			case <-time.After(30 * time.Second):
				e.t.Fatal("publish ack timeout")
			}
		}
	}
}

// publishBase publishes n events plus what a rebuild must not double or
// lose: every 20th event again without a Nats-Msg-Id (a stream duplicate
// of one event) and every 50th a correction (revision 1, other content).
// It returns the rows the writer stores for them.
func (e *env) publishBase(n int) uint64 {
	now := time.Now().UTC()
	var msgs []*nats.Msg
	rows := uint64(0)
	for i := range n {
		ev := touch(e.t, "base", i, now)
		msgs = append(msgs, msgOf(e.t, &ev, true))
		rows++
		if i%20 == 0 {
			msgs = append(msgs, msgOf(e.t, &ev, false))
		}
		if i%50 == 1 {
			fix := ev
			fix.Extensions = map[string]string{touchpoint.ExtRevision: "1"}
			var data map[string]any
			if err := json.Unmarshal(ev.Data, &data); err != nil {
				e.t.Fatal(err)
			}
			data["account_id"] = "acc-fixed"
			fix.Data, _ = json.Marshal(data)
			msgs = append(msgs, msgOf(e.t, &fix, false))
			rows++
		}
	}
	e.publishAll(msgs)
	return rows
}

// startWriter runs the real writer (services/writer) in this process
// until the test ends.
func (e *env) startWriter() {
	e.t.Helper()
	cfg := e.writerConfig()
	cfg.Writer.Addr = "127.0.0.1:0"
	cfg.Writer.AckWait, cfg.Writer.InsertTimeout = 8*time.Second, 3*time.Second
	cfg.Writer.MaxBackoff, cfg.Writer.LagInterval = time.Second, time.Second
	cfg.Writer.BatchAge = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logPath := filepath.Join(e.t.TempDir(), "writer.log")
	f, err := os.Create(logPath)
	if err != nil {
		e.t.Fatal(err)
	}
	go func() { done <- writer.Run(ctx, cfg, slog.New(slog.NewTextHandler(f, nil))) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("writer.Run: %v", err)
		}
		f.Close()
	})
}

// writerDrained reports the writer's consumer has nothing pending or unacked.
func (e *env) writerDrained() bool { return e.drained(stream.TouchpointStream, "writer")() }

// live publishes "live" events at a steady pace until stopped: the
// traffic a rebuild must not lose.
type live struct {
	sent atomic.Int64
	stop chan struct{}
	wg   sync.WaitGroup
	err  atomic.Value
}

func (e *env) startLive(family string) *live {
	l := &live{stop: make(chan struct{})}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		now := time.Now().UTC()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; {
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
			for range 10 {
				ev := touch(e.t, family, i, now)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := e.js.PublishMsg(ctx, msgOf(e.t, &ev, true))
				cancel()
				if err != nil {
					l.err.Store(err)
					return
				}
				i++
				l.sent.Add(1)
			}
		}
	}()
	return l
}

func (l *live) halt(t *testing.T) int64 {
	close(l.stop)
	l.wg.Wait()
	if err, _ := l.err.Load().(error); err != nil {
		t.Fatalf("live publisher: %v", err)
	}
	return l.sent.Load()
}

func (e *env) rebuildState() journeyctl.RebuildState {
	e.t.Helper()
	var st journeyctl.RebuildState
	e.opsRecord("rebuild.warehouse", &st)
	return st
}

// opsRecord decodes the JSON record under key in journeyctl's ops bucket
// into v: where the long ops actions keep their progress.
func (e *env) opsRecord(key string, v any) {
	e.t.Helper()
	kv, err := e.js.KeyValue(context.Background(), journeyctl.OpsBucket)
	if err != nil {
		e.t.Fatal(err)
	}
	ent, err := kv.Get(context.Background(), key)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := json.Unmarshal(ent.Value(), v); err != nil {
		e.t.Fatal(err)
	}
}

// exactlyOnce checks the table holds want rows, one per (source, id,
// revision), and returns its count.
func (e *env) exactlyOnce(table string, want uint64) {
	e.t.Helper()
	n := e.count("SELECT count() FROM " + table)
	uniq := e.count("SELECT uniqExact(source, id, revision) FROM " + table)
	idx := e.count("SELECT count() FROM " + "event_ids" + table[len("events"):])
	e.t.Logf("%s: %d rows, %d distinct (source, id, revision), index %d; want %d", table, n, uniq, idx, want)
	if n != want || uniq != n || idx != n {
		e.t.Fatalf("%s: %d rows, %d distinct, index %d; want %d of each", table, n, uniq, idx, want)
	}
}

// A rebuild from the stream while a live publisher and the real writer
// run through it and through the swap: afterwards events holds exactly
// what the stream holds (rows and checksums per month, as `rebuild
// verify` and the counts here say), no live event is missing, none is
// doubled; rollback brings back the old table, a row the stream never
// had included, with the live rows written since the swap.
func TestRebuildWithLiveTrafficThroughSwap(t *testing.T) {
	e := newEnv(t)
	e.startWriter()
	base := e.publishBase(20000)
	waitFor(t, 2*time.Minute, "the writer to store the base events", func() bool { return e.writerDrained() })
	e.exactlyOnce("events", base)
	// A row written by "a bug": in events (and its index) but in no
	// stream message. The rebuild leaves it out; rollback brings it back.
	bad := warehouse.EventRow{StreamSeq: 1, ID: "bad-1", Source: "rebuild-test", Type: "io.klantreis.touchpoint.visit.v1", Kind: "visit",
		CustomerID: "cust-bad", Time: time.Now().UTC(), IngestedAt: time.Now().UTC(), Data: "{}", IDHash: touchpoint.IdentityHash("rebuild-test", "bad-1")}
	if err := e.db.InsertEvents(context.Background(), []warehouse.EventRow{bad}); err != nil {
		t.Fatal(err)
	}

	l := e.startLive("live")
	time.Sleep(time.Second)
	if code, _, _ := e.run("rebuild", "warehouse", "--batch", "2000"); code != 0 {
		t.Fatalf("rebuild warehouse: exit %d", code)
	}
	st := e.rebuildState()
	t.Logf("shadow filled: mark %d, inserted %d, skipped %d, invalid %d, live sent so far %d", st.Mark, st.Inserted, st.Skipped, st.Invalid, l.sent.Load())
	if code, _, _ := e.run("rebuild", "verify"); code != 0 {
		t.Fatalf("rebuild verify of the shadow: exit %d", code)
	}
	if code, _, _ := e.run("rebuild", "swap", "--settle", "1s"); code != 0 {
		t.Fatalf("rebuild swap: exit %d", code)
	}
	st = e.rebuildState()
	t.Logf("swapped by %s at mark %d; %d live rows caught up from the old table; live sent so far %d", st.Method, st.SwapMark, st.CaughtUp, l.sent.Load())
	time.Sleep(2 * time.Second) // live writes into the new table
	sent := l.halt(t)
	waitFor(t, 2*time.Minute, "the writer to drain the live events", func() bool { return e.writerDrained() })

	want := base + uint64(sent)
	e.exactlyOnce("events", want)
	if n := e.count("SELECT count() FROM events WHERE id = 'bad-1'"); n != 0 {
		t.Fatalf("the rebuilt events holds %d rows of the bad row no stream message carries", n)
	}
	if n := e.count("SELECT uniqExact(id) FROM events WHERE id LIKE 'live-%'"); n != uint64(sent) {
		t.Fatalf("events holds %d of the %d live events", n, sent)
	}
	if n := e.count("SELECT count() FROM events WHERE stream_seq > ?", st.SwapMark); n == 0 {
		t.Fatal("no row after the swap mark: the live traffic did not run through the swap")
	}
	t.Logf("live events: %d sent, %d rows after the swap mark %d", sent, e.count("SELECT count() FROM events WHERE stream_seq > ?", st.SwapMark), st.SwapMark)
	var v journeyctl.Verification
	e.runJSON(&v, "rebuild verify of the swapped events:", "rebuild", "verify", "--table", "events", "--json")
	if !v.OK || v.Want != want || v.Got != want || len(v.Months) < 3 {
		t.Fatalf("verify: ok %v, want %d rows, got %d, %d months; the stream holds %d", v.OK, v.Want, v.Got, len(v.Months), want)
	}
	t.Logf("verify: %d months, stream %d rows = table %d rows", len(v.Months), v.Want, v.Got)

	// Rollback: the old table again, with the live rows written since.
	l = e.startLive("again")
	time.Sleep(500 * time.Millisecond)
	if code, _, _ := e.run("rebuild", "rollback", "--settle", "1s"); code != 0 {
		t.Fatalf("rebuild rollback: exit %d", code)
	}
	more := l.halt(t)
	waitFor(t, 2*time.Minute, "the writer to drain", func() bool { return e.writerDrained() })
	if n := e.count("SELECT count() FROM events WHERE id = 'bad-1'"); n != 1 {
		t.Fatalf("after rollback events holds %d rows of the old table's bad row, want 1", n)
	}
	e.exactlyOnce("events", want+1+uint64(more))
	if n := e.count("SELECT uniqExact(id) FROM events WHERE id LIKE 'again-%'"); n != uint64(more) {
		t.Fatalf("after rollback events holds %d of the %d events published through it", n, more)
	}
	t.Logf("after rollback: %d rows (the old table's bad row + %d base + %d live through the swap + %d live through the rollback)", want+1+uint64(more), base, sent, more)
	if code, _, _ := e.run("rebuild", "status"); code != 0 {
		t.Fatalf("rebuild status: exit %d", code)
	}
	if n := e.count("SELECT count() FROM ops_audit WHERE action LIKE 'rebuild.%'"); n < 5 {
		t.Fatalf("%d rebuild rows in ops_audit, want one per action (5)", n)
	}
}

// verify exits 3 when the shadow and the stream differ, and says where.
func TestRebuildVerifyFindsADifference(t *testing.T) {
	t.Parallel() // its own NATS server and database
	e := newEnv(t)
	base := e.publishBase(3000)
	if code, _, _ := e.run("rebuild", "warehouse"); code != 0 {
		t.Fatalf("rebuild warehouse: exit %d", code)
	}
	e.exactlyOnce("events__rebuild", base)
	if code, _, _ := e.run("rebuild", "verify"); code != 0 {
		t.Fatalf("verify of a faithful shadow: exit %d", code)
	}
	// One row doubled in the shadow: the count and the checksum differ.
	var r warehouse.EventRow
	if err := e.db.Conn.QueryRow(context.Background(), "SELECT stream_seq, id, source, id_hash, revision, time FROM events__rebuild LIMIT 1").
		Scan(&r.StreamSeq, &r.ID, &r.Source, &r.IDHash, &r.Revision, &r.Time); err != nil {
		t.Fatal(err)
	}
	if err := e.db.InsertEventsInto(context.Background(), "events__rebuild", []warehouse.EventRow{r}); err != nil {
		t.Fatal(err)
	}
	code, out, _ := e.run("rebuild", "verify")
	if code != journeyctl.ExitVerify {
		t.Fatalf("verify of a shadow with a doubled row: exit %d, want %d", code, journeyctl.ExitVerify)
	}
	t.Logf("the doubled row of month %s was found:\n%s", r.Time.Format("200601"), out)
}

// --from-table: the shadow is the events table with one row per identity.
func TestRebuildFromTable(t *testing.T) {
	t.Parallel() // its own NATS server and database
	e := newEnv(t)
	e.startWriter()
	base := e.publishBase(4000)
	waitFor(t, 2*time.Minute, "the writer", func() bool { return e.writerDrained() })
	// A doubled row (the bug the rebuild repairs).
	if err := e.db.Conn.Exec(context.Background(), "INSERT INTO events SELECT * FROM events WHERE id = 'base-7'"); err != nil {
		t.Fatal(err)
	}
	if n := e.count("SELECT count() FROM events"); n != base+1 {
		t.Fatalf("events: %d rows before the rebuild, want %d", n, base+1)
	}
	if code, _, _ := e.run("rebuild", "warehouse", "--from-table", "events"); code != 0 {
		t.Fatalf("rebuild warehouse --from-table: exit %d", code)
	}
	e.exactlyOnce("events__rebuild", base)
	if code, _, _ := e.run("rebuild", "verify"); code != 0 {
		t.Fatalf("verify against the table: exit %d", code)
	}
	if code, _, _ := e.run("rebuild", "swap", "--settle", "100ms"); code != 0 {
		t.Fatalf("swap: exit %d", code)
	}
	e.exactlyOnce("events", base)
}

// buildJourneyctl builds the journeyctl binary for a test that kills it.
func buildJourneyctl(t *testing.T) string {
	t.Helper()
	return buildCmd(t, "services/journeyctl/cmd/journeyctl")
}

// kill -9 of journeyctl in the middle of a rebuild, then the same
// command again: the shadow holds every event once, as verify says.
func TestRebuildKilledMidwayResumes(t *testing.T) {
	bin := buildJourneyctl(t)
	e := newEnv(t)
	e.startWriter()
	base := e.publishBase(20000)
	waitFor(t, 3*time.Minute, "the writer", func() bool { return e.writerDrained() })
	s, err := e.js.Stream(context.Background(), stream.TouchpointStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	last := info.State.LastSeq

	l := e.startLive("live")
	logPath := filepath.Join(t.TempDir(), "journeyctl.log")
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	cmd := exec.Command(bin, "--actor", "test:kill", "rebuild", "warehouse", "--batch", "500")
	cmd.Env = e.childEnv()
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "the rebuild to be under way", func() bool {
		return e.count("SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'events__rebuild'") == 1 &&
			e.count("SELECT count() FROM events__rebuild") >= 5000
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		b, _ := os.ReadFile(logPath)
		t.Fatalf("journeyctl was not killed by SIGKILL (%v): it finished first?\n%s", err, b)
	}
	killed := e.rebuildState()
	shadowAtKill := e.count("SELECT count() FROM events__rebuild")
	t.Logf("killed at mark %d of %d: shadow %d rows, state says %d inserted", killed.Mark, last, shadowAtKill, killed.Inserted)
	t.Logf("%d rows inserted but not yet recorded when killed (judged again on resume)", shadowAtKill-killed.Inserted)
	if killed.Phase != "filling" || killed.Mark >= last {
		t.Fatalf("the kill came too late: phase %s, mark %d of %d", killed.Phase, killed.Mark, last)
	}

	again := exec.Command(bin, "--actor", "test:kill", "rebuild", "warehouse", "--batch", "500")
	again.Env = cmd.Env
	out, err := again.CombinedOutput()
	t.Logf("journeyctl rebuild warehouse (again):\n%s", out)
	if err != nil {
		t.Fatalf("the rebuild after the kill: %v", err)
	}
	// Whether the killed run's last INSERT still ran on the server when
	// this one began depends on timing (TestRebuildWaitsForAnInterruptedInsert
	// makes it certain); the figure says which case this run was.
	t.Logf("the resumed run waited for a statement of the killed one: %v",
		strings.Contains(string(out), "statements of an earlier, interrupted rebuild run"))
	st := e.rebuildState()
	// The shadow holds the base events and the live ones up to its mark.
	liveInShadow := e.count("SELECT count() FROM events__rebuild WHERE id LIKE 'live-%'")
	e.exactlyOnce("events__rebuild", base+liveInShadow)
	t.Logf("resumed: mark %d, inserted %d in all (%d live), %d duplicates or stale skipped", st.Mark, st.Inserted, liveInShadow, st.Skipped)
	if code, _, _ := e.run("rebuild", "verify"); code != 0 {
		t.Fatalf("verify after the resumed rebuild: exit %d", code)
	}
	if code, _, _ := e.run("rebuild", "swap", "--settle", "1s"); code != 0 {
		t.Fatalf("swap after the resumed rebuild: exit %d", code)
	}
	sent := l.halt(t)
	waitFor(t, 2*time.Minute, "the writer to drain", func() bool { return e.writerDrained() })
	e.exactlyOnce("events", base+uint64(sent))
	if code, _, _ := e.run("rebuild", "verify", "--table", "events"); code != 0 {
		t.Fatalf("verify of events after the swap: exit %d", code)
	}
	if code := e.count("SELECT count() FROM ops_audit WHERE action = 'rebuild.warehouse' AND outcome = 'ok'"); code != 1 {
		t.Fatalf("%d successful rebuild.warehouse audit rows, want 1 (the killed run wrote none)", code)
	}
}

// A rebuild killed mid-INSERT leaves the statement running on the server:
// its rows land after the kill. The same command run again waits for it,
// and then finds those rows in the shadow's index instead of inserting
// them a second time. Here the earlier run's statement is a slow INSERT
// of one event under a rebuild query id (held 3 s), begun before the
// resumed rebuild judges that event's batch.
func TestRebuildWaitsForAnInterruptedInsert(t *testing.T) {
	t.Parallel() // its own NATS server and database
	e := newEnv(t)
	e.startWriter()
	base := e.publishBase(300)
	waitFor(t, 2*time.Minute, "the writer", func() bool { return e.writerDrained() })
	ctx := context.Background()
	if code, _, _ := e.run("rebuild", "status"); code != 0 { // creates the ops bucket
		t.Fatalf("rebuild status: exit %d", code)
	}
	if err := e.db.CreateShadow(ctx, "__rebuild"); err != nil {
		t.Fatal(err)
	}
	kv, err := e.js.KeyValue(ctx, journeyctl.OpsBucket)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := json.Marshal(journeyctl.RebuildState{Phase: "filling", Source: "stream", Started: time.Now().UTC()})
	if _, err := kv.Put(ctx, "rebuild.warehouse", st); err != nil {
		t.Fatal(err)
	}
	qid := "journeyctl-rebuild-" + e.db.Database() + "-killed"
	slow := warehousetest.SlowInsert(t, e.db, qid, "events__rebuild", "events", "id = 'base-7'")
	code, _, errOut := e.run("rebuild", "warehouse", "--batch", "100")
	if code != 0 {
		t.Fatalf("rebuild warehouse: exit %d", code)
	}
	if err := <-slow; err != nil {
		t.Fatalf("the slow insert: %v", err)
	}
	if !strings.Contains(errOut, "statements of an earlier, interrupted rebuild run") {
		t.Errorf("the rebuild did not say it waited for the running insert")
	}
	e.exactlyOnce("events__rebuild", base)
}
