package journeyctl_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/klantreis/journey/pkg/erasure"
	"github.com/klantreis/journey/pkg/expiryindex"
	"github.com/klantreis/journey/pkg/opsjob"
	"github.com/klantreis/journey/pkg/privacy"
	"github.com/klantreis/journey/pkg/ruleset"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/schemas"
)

// left counts what every store of the erasure (the inventory, listed live)
// still holds of the customers.
func (s *stack) left(customers ...string) map[string]uint64 {
	s.t.Helper()
	ctx := context.Background()
	stores, err := privacy.Stores(ctx, s.js, s.db, privacy.Names{})
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, st := range stores {
		n, err := st.Count(ctx, customers)
		if err != nil {
			s.t.Fatalf("count %s: %v", st.Name(), err)
		}
		if n > 0 {
			out[st.Name()] = n
		}
	}
	return out
}

func receiptsOf(t *testing.T, out string) []privacy.Receipt {
	t.Helper()
	var rs []privacy.Receipt
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		t.Fatalf("receipt JSON: %v\n%s", err, out)
	}
	return rs
}

func storeCounts(r privacy.Receipt) map[string]uint64 {
	out := map[string]uint64{}
	for _, s := range r.Stores {
		if s.Count > 0 {
			out[s.Store] = s.Count
		}
	}
	return out
}

// load publishes visits of other customers until stop is closed, and
// returns how many it published per customer.
func (s *stack) load(stop <-chan struct{}, customers int) (done func() map[string]int) {
	var wg sync.WaitGroup
	sent := map[string]int{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			c := fmt.Sprintf("load-%d", i%customers)
			e, err := touchpoint.New("load", fmt.Sprintf("l-%d", i), c, time.Now().Add(-time.Hour), touchpoint.Visit{Common: touchpoint.Common{Channel: "web"}})
			if err != nil {
				s.t.Error(err)
				return
			}
			m, _ := stream.NewFactMsg(&e)
			if _, err := s.js.PublishMsg(context.Background(), m); err != nil {
				s.t.Error(err)
				return
			}
			sent[c]++
		}
	}()
	return func() map[string]int { wg.Wait(); return sent }
}

// Erase two customers while other customers' events keep arriving and
// the erased ones' keep coming too: afterwards the inventory's every store
// holds nothing of them, the receipt counts what each held, the others
// lost nothing, and a replay of their old events brings nothing back.
func TestEraseDuringLoadLeavesTheCustomerInNoStore(t *testing.T) {
	t.Parallel() // its own NATS server and database
	s := newStack(t)
	at := time.Now().Add(-48 * time.Hour).UTC().Truncate(time.Millisecond)
	var all []touchpoint.Event
	for _, c := range []string{"alice", "bob/2", "carol"} {
		valid, bad := customerEvents(t, c, "ev-"+c, at)
		s.publish(append(valid, bad)...)
		all = append(all, valid...)
	}
	s.settled("alice", "bob/2", "carol")
	before := s.left("alice", "bob/2")
	t.Logf("before: %v", before)
	for _, want := range []string{"stream TOUCHPOINTS", "stream DERIVED", "stream DEADLETTER", "stream KV_journey_customers", "stream KV_journey_expiry",
		"table events", "table event_ids", "table events_dead", "table customer_state", "table stage_transitions", "table satisfaction_responses"} {
		if before[want] == 0 {
			t.Errorf("before the erasure %s holds nothing of them: the test would prove nothing there", want)
		}
	}

	stop := make(chan struct{})
	done := s.load(stop, 20)
	// The erased customers' own events keep coming while the erasure runs.
	var late atomic.Int32
	lateDone := make(chan struct{})
	go func() {
		defer close(lateDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			e, _ := touchpoint.New("late", fmt.Sprintf("late-%d", i), "alice", time.Now().Add(-time.Minute), touchpoint.Visit{Common: touchpoint.Common{Channel: "web"}})
			s.publish(e)
			late.Add(1)
		}
	}()
	time.Sleep(300 * time.Millisecond)
	code, out, _ := s.run("--json", "erase", "--id", "er-load", "alice", "bob/2")
	close(stop)
	sent := done()
	<-lateDone
	if code != 0 {
		t.Fatalf("erase exited %d", code)
	}
	rs := receiptsOf(t, out)
	if len(rs) != 1 || rs[0].Phase != erasure.PhaseComplete || rs[0].Completed == nil || rs[0].Started.After(*rs[0].Completed) {
		t.Fatalf("receipt %+v", rs)
	}
	got := storeCounts(rs[0])
	for st, n := range before {
		if got[st] < n {
			t.Errorf("receipt: %s removed %d, but it held %d before", st, got[st], n)
		}
	}
	if slices.Contains(rs[0].Hashes, "alice") || !slices.Contains(rs[0].Hashes, erasure.Hash("alice")) {
		t.Errorf("receipt hashes %v", rs[0].Hashes)
	}
	t.Logf("receipt: %v; %d late events of alice published during the erasure", got, late.Load())

	// Every other customer's events arrived (the writer went on).
	for c, n := range sent {
		s.eventually("load customer "+c, time.Minute, func() (bool, string) {
			have := s.count("SELECT count() FROM events WHERE customer_id = ?", c)
			return have == uint64(n), fmt.Sprintf("%d of %d", have, n)
		})
	}
	if n := s.count("SELECT count() FROM events WHERE customer_id = 'carol'"); n != 5 {
		t.Errorf("carol has %d events, want 5", n)
	}
	// A replay of the erased customers' old events, then one of carol's.
	s.publish(all...)
	marker, _ := touchpoint.New("test", "after-replay", "carol", time.Now().Add(-time.Minute), touchpoint.Visit{Common: touchpoint.Common{Channel: "web"}})
	s.publish(marker)
	s.eventually("carol's event after the replay", time.Minute, func() (bool, string) {
		n := s.count("SELECT count() FROM events WHERE customer_id = 'carol'")
		st := s.count("SELECT count() FROM customer_state WHERE customer_id = 'carol' AND last_touch >= ?", marker.Time.Add(-time.Second))
		return n == 6 && st > 0, fmt.Sprintf("events %d, state %d", n, st)
	})
	// Nothing of theirs in any table, KV bucket, derived stream or dead
	// letters; the streams hold only what was published straight to NATS
	// after the erasure (the replay), which no consumer stored.
	left := s.left("alice", "bob/2")
	for st, n := range left {
		if st != "stream TOUCHPOINTS" {
			t.Errorf("after the erasure and a replay, %s holds %d records of them", st, n)
		}
	}
	t.Logf("after the replay: %v (TOUCHPOINTS holds the replayed messages, acked and dropped by both consumers)", left)
	ctx := context.Background()
	cons, err := s.js.Consumer(ctx, stream.TouchpointStream, "writer")
	if err != nil {
		t.Fatal(err)
	}
	s.eventually("writer acked everything", 30*time.Second, func() (bool, string) {
		info, err := cons.Info(ctx)
		if err != nil {
			return false, err.Error()
		}
		return info.NumPending == 0 && info.NumAckPending == 0, fmt.Sprintf("pending %d, ack pending %d", info.NumPending, info.NumAckPending)
	})

	// The receipt event: on PRIVACY, valid against its schema.
	ps, err := s.js.Stream(ctx, privacy.ReceiptStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ps.GetLastMsgForSubject(ctx, "privacy.erased.er-load")
	if err != nil {
		t.Fatal(err)
	}
	ev, err := stream.DecodeMsg(m.Header, m.Data)
	if err != nil || ev.Type != privacy.ReceiptType || ev.ID != "er-load" {
		t.Fatalf("receipt event %+v: %v", ev, err)
	}
	validateReceipt(t, ev.Data)
	if strings.Contains(string(ev.Data), "alice") {
		t.Errorf("the receipt names the customer: %s", ev.Data)
	}
	// GET-like read through the service: the same receipt.
	code, out, _ = s.run("--json", "erase", "--id", "er-load", "alice", "bob/2")
	if again := receiptsOf(t, out); code != 0 || again[0].Attempts != 1 || !again[0].Completed.Equal(*rs[0].Completed) {
		t.Errorf("the same id again: exit %d, %+v", code, again)
	}
}

func validateReceipt(t *testing.T, data []byte) {
	t.Helper()
	b, err := schemas.Events.ReadFile("events/privacy_erased.v1.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(schemas.BaseURI+"privacy_erased.v1.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(schemas.BaseURI + "privacy_erased.v1.json")
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Errorf("receipt does not match schemas/events/privacy_erased.v1.json: %v\n%s", err, data)
	}
}

// The inventory is the one list of stores. Every stream, bucket and table
// a running journey has must be covered by it; a stray one is reported.
func TestInventoryCoversEveryStore(t *testing.T) {
	t.Parallel() // its own NATS server and database
	s := newStack(t)
	valid, bad := customerEvents(t, "dave", "ev-dave", time.Now().Add(-time.Hour).UTC())
	s.publish(append(valid, bad)...)
	s.settled("dave")
	ctx := context.Background()
	// A rebuild's shadow table with dave's rows: erased like events.
	if err := s.db.Conn.Exec(ctx, "CREATE TABLE events__rebuild AS events"); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Conn.Exec(ctx, "INSERT INTO events__rebuild SELECT * FROM events WHERE customer_id = 'dave'"); err != nil {
		t.Fatal(err)
	}
	// A re-derived rules version's state bucket with dave's record: erased
	// like the live one.
	shadow, err := s.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "journey_customers__v2", History: 4})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := shadow.Put(ctx, stream.CustomerKey("dave"), []byte(`{"stage":"prospect"}`)); err != nil {
		t.Fatal(err)
	}
	// A replay's copy of one of dave's touchpoints not yet delivered (no
	// replay reader runs here): erased from REPLAY too.
	if _, err := s.js.CreateStream(ctx, stream.DefaultTopology().ReplayConfig()); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		t.Fatal(err)
	}
	if _, err := s.js.Publish(ctx, "replay.warehouse.0.visit."+stream.CustomerKey("dave"), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	// An ops job asked for through the API that names dave: redacted.
	jobs, err := opsjob.Open(ctx, s.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	job, err := jobs.Submit(ctx, []string{"replay", "--to", "warehouse", "--customer", "dave"}, "api:test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// A replay of dave and ann, recorded twice (the ops bucket keeps 16
	// revisions), beside the live rules pointer: the record is redacted,
	// its older revision purged, the pointer left alone.
	ops := replayRecord(t, s.js)
	// An expiry index shard (a projector in checkpoint mode) that holds
	// dave and ann: dave leaves it, ann stays.
	ix, err := s.js.KeyValue(ctx, "journey_expiry")
	if err != nil {
		t.Fatal(err)
	}
	expiry := time.Now().Add(time.Hour).UTC()
	if _, err := ix.Put(ctx, expiryindex.ShardKey(3, 5), expiryindex.Encode(map[string]time.Time{"dave": expiry, "ann": expiry})); err != nil {
		t.Fatal(err)
	}
	const replayStore = "stream KV_" + ruleset.Bucket + " (replay.>)"
	if code, out, _ := s.run("--json", "erase", "dave"); code != 0 {
		t.Fatalf("erase: %d", code)
	} else if got := storeCounts(receiptsOf(t, out)[0]); got["table events__rebuild"] != 5 || got["stream KV_journey_customers__v2"] != 1 || got["stream REPLAY"] != 1 || got["stream KV_"+opsjob.Bucket] != 1 || got[replayStore] != 1 || got["stream KV_journey_expiry (shards)"] != 1 {
		t.Errorf("shadow stores: receipt %v, want 5 rows of events__rebuild, 1 record of KV_journey_customers__v2, 1 copy in REPLAY, 1 job, 1 replay record and 1 index shard", got)
	}
	if e, err := ix.Get(ctx, expiryindex.ShardKey(3, 5)); err != nil {
		t.Fatal(err)
	} else if want := expiryindex.Encode(map[string]time.Time{"ann": expiry}); string(e.Value()) != string(want) {
		t.Errorf("the index shard after erasing dave: %q, want %q", e.Value(), want)
	}
	checkReplayRedacted(t, ops, "dave", "ann")
	if j, _, err := jobs.Get(ctx, job.ID); err != nil || slices.Contains(j.Args, "dave") {
		t.Errorf("the job still names dave: %v (%v)", j.Args, err)
	}
	if rs, err := s.js.Stream(ctx, stream.ReplayStream); err != nil {
		t.Fatal(err)
	} else if info, err := rs.Info(ctx); err != nil {
		t.Fatal(err)
	} else if info.State.Msgs != 0 {
		t.Errorf("REPLAY after the erasure: %d copies, want 0", info.State.Msgs)
	}
	if _, err := shadow.Get(ctx, stream.CustomerKey("dave")); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("the shadow bucket still answers for dave: %v", err)
	}
	if n := s.count("SELECT count() FROM events__rebuild WHERE customer_id = 'dave'"); n != 0 {
		t.Errorf("events__rebuild holds %d rows of dave", n)
	}

	uncovered := func() []string {
		var names []string
		lister := s.js.StreamNames(ctx)
		for n := range lister.Name() {
			names = append(names, n)
		}
		if err := lister.Err(); err != nil {
			t.Fatal(err)
		}
		tables, err := privacy.ListTables(ctx, s.db)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("live: %d streams %v, %d tables", len(names), names, len(tables))
		return privacy.Uncovered(names, tables, privacy.Names{})
	}
	if u := uncovered(); len(u) > 0 {
		t.Errorf("stores the erasure does not cover: %v (add them to pkg/privacy's inventory)", u)
	}
	// A new stream and a table without customer_id are caught; a table
	// with customer_id is erased without a change.
	if _, err := s.js.CreateStream(ctx, jetstream.StreamConfig{Name: "STRAY", Subjects: []string{"stray.>"}}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"CREATE TABLE stray_notes (note String) ENGINE = MergeTree ORDER BY note",
		"CREATE TABLE loyalty (customer_id String, points UInt32) ENGINE = MergeTree ORDER BY customer_id"} {
		if err := s.db.Conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if u := uncovered(); !slices.Equal(u, []string{"stream STRAY", "table stray_notes"}) {
		t.Errorf("uncovered %v, want [stream STRAY table stray_notes]", u)
	}
	if code, _, errOut := s.run("erase", "erin"); code == 0 || !strings.Contains(errOut, "stray_notes") || !strings.Contains(errOut, "suppressed") {
		t.Errorf("an erasure with an uncovered table: exit %d, %s", code, errOut)
	}
	// erin is suppressed all the same: the writer drops her new events.
	skv, err := s.js.KeyValue(ctx, "journey_suppressed")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := skv.Get(ctx, erasure.Hash("erin")); err != nil {
		t.Errorf("erin's suppression entry: %v", err)
	}
}

// journeyctl erase is killed with SIGKILL in the middle of an erasure (as
// soon as the journal shows a given store erased: the first stream, or
// the events table, among the mutations); run again with --resume it
// finishes, and the receipt counts what the stores held before the kill.
func TestEraseResumesAfterSIGKILL(t *testing.T) {
	bin := buildJourneyctl(t)
	for _, after := range []string{"stream TOUCHPOINTS", "table events"} {
		t.Run("after "+after, func(t *testing.T) { killDuringErasure(t, bin, after) })
	}
}

func killDuringErasure(t *testing.T, bin, after string) {
	s := newStack(t)
	customers := []string{"k1", "k2", "k3"}
	for _, c := range customers {
		valid, bad := customerEvents(t, c, "ev-"+c, time.Now().Add(-time.Hour).UTC())
		s.publish(append(valid, bad)...)
	}
	s.settled(customers...)
	before := s.left(customers...)
	ctx := context.Background()
	jkv, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: privacy.JournalBucket, History: 1, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	w, err := jkv.Watch(ctx, "er-kill")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	cmd, stderr := s.startCtl(bin, []string{"--json", "--actor", "test", "erase", "--id", "er-kill", "k1", "k2", "k3"},
		"JOURNEY_CLICKHOUSE_USER="+s.ch.User, "JOURNEY_CLICKHOUSE_PASSWORD="+s.ch.Password)
	var at erasure.Record
	deadline := time.After(2 * time.Minute)
wait:
	for {
		select {
		case e := <-w.Updates():
			if e == nil {
				continue
			}
			var r erasure.Record
			if err := json.Unmarshal(e.Value(), &r); err != nil {
				t.Fatal(err)
			}
			if r.Phase == erasure.PhaseComplete {
				t.Fatalf("the erasure completed before it could be killed: %+v", r)
			}
			if r.Phase == erasure.PhaseErasing && slices.ContainsFunc(r.Steps, func(st erasure.Step) bool { return st.Store == after && st.Erased }) {
				_ = cmd.Process.Signal(syscall.SIGKILL)
				at = r
				break wait
			}
		case <-deadline:
			t.Fatalf("no erasing phase in the journal; stderr: %s", stderr.String())
		}
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("journeyctl was not killed by SIGKILL: %v", err)
	}
	erased := 0
	for _, st := range at.Steps {
		if st.Erased {
			erased++
		}
	}
	t.Logf("killed with %d of %d stores erased", erased, len(at.Steps))
	if code, out, _ := s.run("--json", "erase", "--resume"); code != 0 {
		t.Fatalf("resume exited %d", code)
	} else {
		rs := receiptsOf(t, out)
		if len(rs) != 1 || rs[0].ErasureID != "er-kill" || rs[0].Phase != erasure.PhaseComplete || rs[0].Attempts != 2 {
			t.Fatalf("receipts after resume %+v", rs)
		}
		got := storeCounts(rs[0])
		for st, n := range before {
			if got[st] != n {
				t.Errorf("receipt %s: %d, held %d before the erasure", st, got[st], n)
			}
		}
		t.Logf("before %v\nreceipt %v", before, got)
	}
	if left := s.left(customers...); len(left) > 0 {
		t.Errorf("after the resumed erasure: %v", left)
	}
}

// After the erasure, new events of the customer published straight to
// NATS (pkg/publish, a redrive, a replay) are acked and dropped by the
// writer and the projector: stored nowhere, not even as dead letters, and
// counted in journey_writer_suppressed_total and
// journey_projector_suppressed_total.
func TestSuppressedCustomersNewEventsAreDroppedOnTheNATSPath(t *testing.T) {
	t.Parallel() // its own NATS server and database
	s := newStack(t)
	valid, bad := customerEvents(t, "frank", "ev-frank", time.Now().Add(-3*time.Hour).UTC())
	s.publish(append(valid, bad)...)
	s.settled("frank")
	if code, _, _ := s.run("erase", "frank"); code != 0 {
		t.Fatalf("erase: %d", code)
	}
	w0, p0 := s.metric(s.writerOps, "journey_writer_suppressed_total"), s.metric(s.projectorOps, "journey_projector_suppressed_total")
	valid, bad = customerEvents(t, "frank", "new-frank", time.Now().Add(-time.Hour).UTC())
	s.publish(append(valid, bad)...)
	marker, _ := touchpoint.New("test", "marker", "grace", time.Now().Add(-time.Minute), touchpoint.Visit{Common: touchpoint.Common{Channel: "web"}})
	s.publish(marker)
	s.eventually("grace's event, published after frank's", time.Minute, func() (bool, string) {
		n := s.count("SELECT count() FROM events WHERE customer_id = 'grace'")
		st := s.count("SELECT count() FROM customer_state WHERE customer_id = 'grace'")
		w, p := s.metric(s.writerOps, "journey_writer_suppressed_total"), s.metric(s.projectorOps, "journey_projector_suppressed_total")
		return n == 1 && st > 0 && w-w0 == 6 && p-p0 == 6, fmt.Sprintf("events %d, state %d, writer dropped %v, projector dropped %v", n, st, w-w0, p-p0)
	})
	left := s.left("frank")
	if len(left) != 1 || left["stream TOUCHPOINTS"] != 6 {
		t.Errorf("after new events: %v, want only the 6 messages in TOUCHPOINTS", left)
	}
	t.Logf("6 new events of an erased customer: stored only in TOUCHPOINTS (%v), dropped by writer and projector", left)
	// The sweep purges them from the stream, and nothing of grace's.
	code, out, _ := s.run("--json", "erase", "--sweep")
	if code != 0 || !strings.Contains(out, `"purged": 6`) {
		t.Errorf("sweep: exit %d, %s", code, out)
	}
	if left := s.left("frank"); len(left) > 0 {
		t.Errorf("after the sweep: %v", left)
	}
	if left := s.left("grace"); left["stream TOUCHPOINTS"] != 1 {
		t.Errorf("the sweep touched grace: %v", left)
	}
}

// A message published under another customer's subject (binary mode with
// a ce-subject header, and structured mode with the subject in the body)
// is dead-lettered by both consumers (the identity rule); erasing the
// customer it is about removes those dead letters from DEADLETTER and
// events_dead, though their subject names someone else.
func TestEraseFindsDeadLettersOfAMismatchedSubject(t *testing.T) {
	t.Parallel() // its own NATS server and database
	s := newStack(t)
	ctx := context.Background()
	e, err := touchpoint.New("test", "mis-1", "mallory", time.Now().Add(-time.Hour), touchpoint.Visit{Common: touchpoint.Common{Channel: "web"}})
	if err != nil {
		t.Fatal(err)
	}
	binary := stream.NewMsg(stream.PublishSubject(touchpoint.KindVisit, "zed"), &e)
	structured := &nats.Msg{Subject: stream.PublishSubject(touchpoint.KindVisit, "zed"),
		Data: []byte(`{"specversion":"1.0","id":"mis-2","source":"test","type":"io.klantreis.touchpoint.visit.v1","subject": "mallory","time":"` +
			time.Now().Add(-time.Hour).UTC().Format(time.RFC3339) + `","data":{"channel":"web"}}`)}
	for _, m := range []*nats.Msg{binary, structured} {
		if _, err := s.js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	s.eventually("both dead-lettered by writer and projector", time.Minute, func() (bool, string) {
		dead := s.count("SELECT count() FROM events_dead")
		ds, err := s.js.Stream(ctx, stream.DeadLetterStream)
		if err != nil {
			return false, err.Error()
		}
		info, _ := ds.Info(ctx)
		return dead == 2 && info.State.Msgs >= 4, fmt.Sprintf("events_dead %d, DEADLETTER %d", dead, info.State.Msgs)
	})
	before := s.left("mallory")
	if before["table events_dead"] != 2 || before["stream DEADLETTER"] < 4 {
		t.Fatalf("the erasure would not find them: %v", before)
	}
	if code, _, _ := s.run("erase", "mallory"); code != 0 {
		t.Fatalf("erase: %d", code)
	}
	if left := s.left("mallory"); len(left) > 0 {
		t.Errorf("after the erasure: %v", left)
	}
	if n := s.count("SELECT count() FROM events_dead"); n != 0 {
		t.Errorf("events_dead holds %d rows", n)
	}
	t.Logf("mismatched-subject dead letters found and erased: %v", before)
}

// replayRecord writes a replay's record naming dave and ann in two
// revisions, and the live rules pointer, into the ops bucket.
func replayRecord(t *testing.T, js jetstream.JetStream) jetstream.KeyValue {
	t.Helper()
	ctx := context.Background()
	if _, err := ruleset.Open(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, ruleset.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{`{"id":"r1","selection":{"customers":["ann","dave"]},"state":"running","last_seq":1}`,
		`{"id":"r1","selection":{"customers":["ann","dave"]},"state":"running","last_seq":9}`} {
		if _, err := kv.Put(ctx, "replay.r1", []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := kv.Put(ctx, ruleset.LiveKey, []byte(`{"version":1}`)); err != nil {
		t.Fatal(err)
	}
	return kv
}

// checkReplayRedacted checks that no revision of the replay's record
// names erased, that the other customer stays named, and that the live
// pointer is as written.
func checkReplayRedacted(t *testing.T, kv jetstream.KeyValue, erased, kept string) {
	t.Helper()
	ctx := context.Background()
	hist, err := kv.History(ctx, "replay.r1")
	if err != nil {
		t.Fatal(err)
	}
	want := `"erased:` + erasure.Hash(erased)[:8] + `"`
	if len(hist) != 1 || strings.Contains(string(hist[0].Value()), `"`+erased+`"`) ||
		!strings.Contains(string(hist[0].Value()), want) || !strings.Contains(string(hist[0].Value()), `"`+kept+`"`) {
		for _, e := range hist {
			t.Logf("revision %d: %s", e.Revision(), e.Value())
		}
		t.Errorf("the replay's record after erasing %s: %d revisions, want one that names %s and %s instead", erased, len(hist), kept, want)
	}
	if e, err := kv.Get(ctx, ruleset.LiveKey); err != nil || string(e.Value()) != `{"version":1}` {
		t.Errorf("the live rules pointer after the erasure: %v", err)
	}
}
