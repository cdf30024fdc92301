package projector_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/freeport"
	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/projection"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
	"github.com/klantreis/journey/services/projector"
)

func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// start runs the projector in-process until the test ends.
func start(t testing.TB, cfg projector.Config) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- projector.Run(ctx, cfg, testLog(t)) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after cancel")
		}
	}
	t.Cleanup(stop)
	return stop
}

func openDB(t testing.TB, cfg warehouse.Config) *warehouse.DB {
	t.Helper()
	db, err := warehouse.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestProjectsJourneys: every customer's state in the key-value bucket
// equals the pure rules applied to their events, and customer_state,
// stage_transitions and satisfaction_responses agree with the bucket.
func TestProjectsJourneys(t *testing.T) {
	now := time.Now().UTC()
	events := journeys(1, 400, now)
	br := brokerWith(t, events)
	js := br.js
	cfg := br.config(warehousetest.Config(t))
	cfg.Projector.Addr = freeAddr(t)
	start(t, cfg)
	waitDrained(t, js, cfg.Projector.Durable, 2*time.Minute)
	waitWarehouse(t, js, cfg, 2*time.Minute)
	checkOps(t, cfg.Projector.Addr, len(events))

	ref := reference(t, events, now)
	recs := kvStates(t, js, cfg.Projector.Bucket)
	if len(recs) != len(ref) {
		t.Fatalf("bucket holds %d customers, want %d", len(recs), len(ref))
	}
	stages := map[journey.Stage]int{}
	for id, want := range ref {
		rec, ok := recs[id]
		if !ok {
			t.Fatalf("customer %q missing from the bucket", id)
		}
		if got, w := summary(rec.State), summary(want); got != w {
			t.Fatalf("customer %q:\n got %s\nwant %s", id, got, w)
		}
		stages[rec.State.Stage()]++
	}
	for _, st := range []journey.Stage{journey.StageProspect, journey.StageNewCustomer, journey.StageLoyalCustomer, journey.StageExCustomer} {
		if stages[st] == 0 {
			t.Errorf("no customer in stage %s: the journeys do not exercise the rules (%v)", st, stages)
		}
	}

	db := openDB(t, cfg.ClickHouse)
	ctx := context.Background()
	for _, r := range projectedRows(t, db, recs) {
		rec := recs[r.CustomerID]
		if rec == nil {
			t.Fatalf("customer_state has unknown customer %q", r.CustomerID)
		}
		st := rec.State
		sat := st.Satisfaction()
		if r.Version != rec.Version() || r.Stage != string(st.Stage()) || !r.StageSince.Equal(st.StageSince().Truncate(time.Second)) ||
			int(r.CountedOrders) != st.CountedOrders() || r.NPSCategory != string(sat.Category) ||
			int(r.Responses) != sat.Responses || int(r.OpenComplaints) != sat.OpenComplaints || r.AtRisk != sat.AtRisk {
			t.Fatalf("customer %q: customer_state %+v disagrees with the bucket (version %d, stage %s since %s, orders %d, %+v)",
				r.CustomerID, r, rec.Version(), st.Stage(), st.StageSince(), st.CountedOrders(), sat)
		}
	}
	// The explanation history in ClickHouse is the bucket's, index by index.
	tr, err := db.Conn.Query(ctx, "SELECT customer_id, idx, CAST(to_stage AS String), CAST(reason AS String), cause_event_ids FROM stage_transitions FINAL WHERE valid = 1")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for tr.Next() {
		var id, to, reason string
		var idx uint32
		var causes []string
		if err := tr.Scan(&id, &idx, &to, &reason, &causes); err != nil {
			t.Fatal(err)
		}
		h := recs[id].State.History
		if int(idx) >= len(h) || string(h[idx].To) != to || string(h[idx].Reason) != reason || fmt.Sprint(h[idx].Causes) != fmt.Sprint(causes) {
			t.Fatalf("stage_transitions %s #%d (%s %s %v) is not in the bucket's history", id, idx, to, reason, causes)
		}
		n++
	}
	tr.Close()
	want := 0
	for _, r := range recs {
		want += len(r.State.History)
	}
	if n != want {
		t.Fatalf("stage_transitions has %d valid rows, histories have %d transitions", n, want)
	}
	var responses uint64
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM satisfaction_responses FINAL").Scan(&responses); err != nil {
		t.Fatal(err)
	}
	wantResp := 0
	for _, r := range recs {
		wantResp += r.State.Satisfaction().Responses
	}
	if int(responses) != wantResp {
		t.Fatalf("satisfaction_responses has %d rows, states count %d responses", responses, wantResp)
	}
	checkDerived(t, js, recs)
}

// checkDerived: every derived event matches its schema, stage_changed
// events exist for customers, and an at_risk event exists for every
// customer at risk now who consents to marketing, and for no other.
func checkDerived(t *testing.T, js jetstream.JetStream, recs map[string]*projection.Record) {
	t.Helper()
	schemas, err := touchpoint.Schemas()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[touchpoint.Kind]int{}
	atRisk := map[string]bool{}
	for _, e := range derivedEvents(t, js) {
		if err := schemas.ValidateData(e.Type, e.Data); err != nil {
			t.Fatalf("derived %s does not match its schema: %v\n%s", e.Type, err, e.Data)
		}
		counts[e.Kind()]++
		if e.Kind() == touchpoint.KindAtRisk {
			atRisk[e.Subject] = true
		}
	}
	if counts[touchpoint.KindStageChanged] < len(recs) {
		t.Fatalf("%d stage_changed events for %d customers", counts[touchpoint.KindStageChanged], len(recs))
	}
	for id, r := range recs {
		if r.State.Satisfaction().AtRisk && r.State.Consents(touchpoint.PurposeMarketing) && !atRisk[id] {
			t.Fatalf("customer %q is at risk and consents to marketing but no at_risk event was emitted", id)
		}
		if atRisk[id] && !r.State.Consents(touchpoint.PurposeMarketing) {
			t.Fatalf("an at_risk event went out for %q, who did not consent to marketing", id)
		}
	}
}

// TestKillRestartAndPartitionsGiveSameState: a projector killed with
// SIGKILL mid-load and restarted ends in the same state as an
// uninterrupted run, and so do two instances splitting the partitions.
func TestKillRestartAndPartitionsGiveSameState(t *testing.T) {
	needsSIGKILL(t)
	now := time.Now().UTC()
	events := journeys(2, 2000, now)
	br := brokerWith(t, events)
	js := br.js
	// Uninterrupted, in-process.
	one := br.config(warehousetest.Config(t))
	projectAll(t, js, one)
	oneStates := recordStates(kvStates(t, js, one.Projector.Bucket))
	oneHash := stateHash(oneStates)
	ref := reference(t, events, now)
	for id, s := range ref {
		if summary(oneStates[id]) != summary(s) {
			t.Fatalf("uninterrupted run: customer %q differs from the rules", id)
		}
	}

	// Killed mid-load, restarted: a child process.
	killed := br.config(warehousetest.Config(t))
	killed.Projector.BatchSize = 100 // more, smaller commits: a kill lands between them
	killMidwayAndRestart(t, br, killed, childEnv(br, killed, "JOURNEY_PROJECTOR_BATCH_SIZE=100", "JOURNEY_PROJECTOR_ACK_WAIT=2s"), len(events))
	if h := stateHash(recordStates(kvStates(t, js, killed.Projector.Bucket))); h != oneHash {
		t.Fatalf("after kill -9 and restart the state hash is %s, uninterrupted %s", h, oneHash)
	}
	// customer_state agrees as well: same stage per customer.
	compareWarehouse(t, one.ClickHouse, killed.ClickHouse)

	// Two instances, each owning half the partitions, sharing one bucket.
	two := br.config(warehousetest.Config(t))
	projectSplit(t, js, two)
	if h := stateHash(recordStates(kvStates(t, js, two.Projector.Bucket))); h != oneHash {
		t.Fatalf("two instances: state hash %s, one instance %s", h, oneHash)
	}
	compareWarehouse(t, one.ClickHouse, two.ClickHouse)
}

// projectedRows reads customer_state (at most 100 000 customers) and fails
// unless it holds as many customers as the bucket's records.
func projectedRows(t *testing.T, db *warehouse.DB, recs map[string]*projection.Record) []warehouse.ProjectedCustomer {
	t.Helper()
	rows, err := db.ProjectedCustomers(context.Background(), 100000)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(recs) {
		t.Fatalf("customer_state has %d customers, the bucket %d", len(rows), len(recs))
	}
	return rows
}

func compareWarehouse(t *testing.T, a, b warehouse.Config) {
	t.Helper()
	ctx := context.Background()
	ra, err := openDB(t, a).ProjectedCustomers(ctx, 1000000)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := openDB(t, b).ProjectedCustomers(ctx, 1000000)
	if err != nil {
		t.Fatal(err)
	}
	if len(ra) != len(rb) {
		t.Fatalf("customer_state: %d vs %d customers", len(ra), len(rb))
	}
	for i := range ra {
		x, y := ra[i], rb[i]
		x.Version, y.Version = 0, 0 // batching may differ; the content may not
		if x != y {
			t.Fatalf("customer_state differs:\n%+v\n%+v", x, y)
		}
	}
}

// freeAddr is a loopback address for a child process to listen on
// (freeport: one no other process is handed meanwhile).
func freeAddr(t testing.TB) string {
	p, err := freeport.Pick()
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(p)
}

// checkOps: /healthz and /readyz answer 200 and /metrics counts every
// applied event and some transitions.
func checkOps(t *testing.T, addr string, events int) {
	t.Helper()
	get := func(path string) string {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	get("/healthz")
	get("/readyz")
	m := get("/metrics")
	// Redeliveries are applied (as no-ops) and counted again: at least
	// every event once.
	i := strings.Index(m, "\njourney_projector_events_applied_total ")
	if i < 0 {
		t.Fatal("/metrics lacks journey_projector_events_applied_total")
	}
	var applied float64
	if _, err := fmt.Sscanf(m[i+1:], "journey_projector_events_applied_total %g", &applied); err != nil || applied < float64(events) {
		t.Fatalf("events applied %g (%v), want at least %d", applied, err, events)
	}
	for _, s := range []string{`journey_projector_transitions_total{from="none",to="prospect"}`, "journey_projector_apply_latency_seconds_count", `journey_projector_lag_events{partition="0"}`} {
		if !strings.Contains(m, s) {
			t.Fatalf("/metrics lacks %s", s)
		}
	}
}

// TestSurvivesNATSRestart: the broker restarts while the projector runs;
// it reconnects, projects what is published afterwards, and ends where the
// rules say.
func TestSurvivesNATSRestart(t *testing.T) {
	br := freshStreams(t)
	js := br.js
	now := time.Now().UTC()
	events := journeys(5, 300, now)
	half := len(events) / 2
	publish(t, js, events[:half])
	cfg := br.config(warehousetest.Config(t))
	start(t, cfg)
	waitDrained(t, js, cfg.Projector.Durable, 2*time.Minute)

	br.restart(t)
	// The test's own connection reconnects too; publish the rest through it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := js.Stream(context.Background(), stream.TouchpointStream); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no reconnect after the restart")
		}
		time.Sleep(100 * time.Millisecond)
	}
	publish(t, js, events[half:])
	waitDrained(t, js, cfg.Projector.Durable, 2*time.Minute)
	waitWarehouse(t, js, cfg, 2*time.Minute)
	recs := kvStates(t, js, cfg.Projector.Bucket)
	for id, want := range reference(t, events, now) {
		if recs[id] == nil || summary(recs[id].State) != summary(want) {
			t.Fatalf("customer %q differs from the rules after a broker restart", id)
		}
	}
	projectedRows(t, openDB(t, cfg.ClickHouse), recs)
}
