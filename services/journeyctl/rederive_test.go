package journeyctl_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/ruleset"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/services/api"
	"github.com/klantreis/journey/services/journeyctl"
	"github.com/klantreis/journey/services/projector"
)

// rederiveFixture is the hand-made fixture: seven customers whose stage
// under loyal=3/365d (the base) and loyal=2/365d is worked out by hand.
//
//	customer  events (days before now)                  3/365d         2/365d
//	c-a       visit 200, order a1 150, order a2 100     new_customer   loyal_customer (2 orders in 50 days)
//	c-b       orders b1 300, b2 200, b3 100             loyal_customer loyal_customer
//	c-c       order c1 100                              new_customer   new_customer
//	c-d       visit 50                                  prospect       prospect
//	c-e       order e1 500, order e2 100                new_customer   new_customer (ex at 135, reactivated at 100: one order in the period)
//	c-f       orders f1 200, f2 150, f2 cancelled 120   new_customer   new_customer (loyal at 150, back at 120)
//	c-g       orders g1 40, g2 10                       new_customer   loyal_customer (2 orders in 30 days)
//
// So the diff is exactly: 2 customers new_customer→loyal_customer (c-a,
// c-g), 5 unchanged.
func rederiveFixture(t *testing.T, now time.Time) []touchpoint.Event {
	day := func(n int) time.Time { return now.Add(-time.Duration(n) * journey.Day).Truncate(time.Second) }
	order := func(id, status string) touchpoint.Typed {
		return touchpoint.Order{OrderID: id, Status: status, Amount: touchpoint.Amount{Cents: 1000}, Currency: "EUR"}
	}
	visit := touchpoint.Visit{Common: touchpoint.Common{Channel: "web"}}
	type ev struct {
		cust string
		days int
		p    touchpoint.Typed
	}
	evs := []ev{
		{"c-a", 200, visit}, {"c-a", 150, order("a1", "placed")}, {"c-a", 100, order("a2", "placed")},
		{"c-b", 300, order("b1", "placed")}, {"c-b", 200, order("b2", "placed")}, {"c-b", 100, order("b3", "placed")},
		{"c-c", 100, order("c1", "placed")},
		{"c-d", 50, visit},
		{"c-e", 500, order("e1", "placed")}, {"c-e", 100, order("e2", "placed")},
		{"c-f", 200, order("f1", "placed")}, {"c-f", 150, order("f2", "placed")}, {"c-f", 120, order("f2", "cancelled")},
		{"c-g", 40, order("g1", "placed")}, {"c-g", 10, order("g2", "placed")},
	}
	out := make([]touchpoint.Event, 0, len(evs))
	for i, e := range evs {
		te, err := touchpoint.New("test-fixture", fmt.Sprintf("fx-%d", i), e.cust, day(e.days), e.p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, te)
	}
	return out
}

// publishFacts publishes events to TOUCHPOINTS one by one, each acked.
func publishFacts(t *testing.T, js jetstream.JetStream, events []touchpoint.Event) {
	t.Helper()
	for i := range events {
		m, err := stream.NewFactMsg(&events[i])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
}

func derivedCount(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	return streamMsgs(t, js, stream.DerivedStream)
}

// startProjector runs the live projector of the test's stack until the
// test ends or stop is called.
func (e *env) startProjector(t *testing.T) (stop func()) { return e.startProjectorWith(t, false) }

// startProjectorWith runs the projector as a one-member elastic group
// (JOURNEY_PROJECTOR_PARTITIONS=group) when grouped.
func (e *env) startProjectorWith(t *testing.T, grouped bool) (stop func()) {
	cfg := projector.Config{NATS: stream.Conn{URL: e.nats, ReconnectWait: 100 * time.Millisecond, RequestTimeout: 5 * time.Second},
		Stream: e.config().Stream, ClickHouse: e.ch, Projector: e.config().ProjectorSettings}
	cfg.Projector.Addr = "127.0.0.1:0"
	cfg.Projector.WarehouseWait = 100 * time.Millisecond
	cfg.Projector.SweepInterval = time.Minute
	if grouped {
		cfg.Projector.Partitions, cfg.Projector.LeaseTTL = projector.PartitionsGroup, 3*time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- projector.Run(ctx, cfg, slog.New(slog.DiscardHandler)) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("projector: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// startAPI runs the api, following the live rules version, and returns
// its base URL.
func (e *env) startAPI(t *testing.T) string {
	return e.runAPI(t, api.Settings{Addr: "127.0.0.1:0", Open: true, FollowRules: true})
}

// runAPI runs the api with settings against the env's NATS and ClickHouse
// until the test ends, and returns its base URL.
func (e *env) runAPI(t *testing.T, settings api.Settings) string {
	cfg := api.Config{ClickHouse: e.ch, NATS: stream.Conn{URL: e.nats, ReconnectWait: 100 * time.Millisecond, RequestTimeout: 5 * time.Second},
		API: settings}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- api.RunNotify(ctx, cfg, slog.New(slog.DiscardHandler), ready) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("api: %v", err)
		}
	})
	select {
	case a := <-ready:
		return "http://" + a.String()
	case err := <-done:
		t.Fatalf("api: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("api did not listen")
	}
	return ""
}

// apiStages reads the stage the api serves for each customer ("" when it
// answers anything but 200).
func apiStages(t *testing.T, base string, ids ...string) map[string]string {
	return apiStagesWith(t, base, "", ids...)
}

// lastDerivedRules is the rules_version of the newest DERIVED event.
func lastDerivedRules(t *testing.T, js jetstream.JetStream) string {
	t.Helper()
	s, err := js.Stream(context.Background(), stream.DerivedStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(context.Background(), "customer.>")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		RulesVersion string `json:"rules_version"`
	}
	if err := json.Unmarshal(m.Data, &d); err != nil {
		t.Fatalf("derived event %s: %v", m.Data, err)
	}
	return d.RulesVersion
}

var fixtureIDs = []string{"c-a", "c-b", "c-c", "c-d", "c-e", "c-f", "c-g"}

func TestRederiveDiffSwitchRollback(t *testing.T) {
	t.Parallel()
	rederiveDiffSwitchRollback(t, false)
}

// The same with the projector in an elastic group: its members hand the
// partitions over from one version's workers to the other's.
func TestRederiveDiffSwitchRollbackGrouped(t *testing.T) {
	t.Parallel()
	rederiveDiffSwitchRollback(t, true)
}

func rederiveDiffSwitchRollback(t *testing.T, grouped bool) {
	e := newEnv(t)
	now := time.Now().UTC()
	events := rederiveFixture(t, now)
	publishFacts(t, e.js, events)
	e.startProjectorWith(t, grouped)
	base := map[string]string{"c-a": "new_customer", "c-b": "loyal_customer", "c-c": "new_customer", "c-d": "prospect",
		"c-e": "new_customer", "c-f": "new_customer", "c-g": "new_customer"}
	waitFor(t, time.Minute, "the live projection of the fixture", func() bool {
		return e.count("SELECT count() FROM (SELECT customer_id FROM customer_state GROUP BY customer_id)") == uint64(len(fixtureIDs))
	})
	url := e.startAPI(t)
	waitFor(t, 30*time.Second, "the api serving the base stages", func() bool { return reflect.DeepEqual(apiStages(t, url, fixtureIDs...), base) })
	derivedBefore := derivedCount(t, e.js)
	t.Logf("live projection: %d derived events", derivedBefore)

	var st journeyctl.StartResult
	e.runJSON(&st, "rederive start", "--json", "rederive", "start", "--rules", "loyal=2/365d")
	if st.Version != "v2" || st.Events != len(events) || st.Resumed || st.Withheld == 0 {
		t.Fatalf("start: version %s, %d events (want %d), resumed %v, %d derived withheld", st.Version, st.Events, len(events), st.Resumed, st.Withheld)
	}
	if n := derivedCount(t, e.js); n != derivedBefore {
		t.Fatalf("the shadow run published %d derived events on DERIVED", n-derivedBefore)
	}
	if n := e.count("SELECT count() FROM (SELECT customer_id FROM customer_state__v2 GROUP BY customer_id)"); n != uint64(len(fixtureIDs)) {
		t.Fatalf("customer_state__v2 holds %d customers, want %d", n, len(fixtureIDs))
	}

	var d journeyctl.DiffResult
	e.runJSON(&d, "rederive diff", "--json", "rederive", "diff", "--samples", "3")
	want := []journeyctl.StagePair{{From: "new_customer", To: "loyal_customer", Count: 2, Samples: []string{"c-a", "c-g"}}}
	if d.From != "v1" || d.To != "v2" || d.Changed != 2 || d.Unchanged != 5 || !reflect.DeepEqual(d.Pairs, want) {
		t.Fatalf("diff = %+v, want v1->v2, 2 changed, 5 unchanged, pairs %+v", d, want)
	}
	code, text, _ := e.run("rederive", "diff")
	if code != 0 || !contains(text, "2 customers: new_customer→loyal_customer") {
		t.Fatalf("text diff (exit %d) lacks the pair line:\n%s", code, text)
	}

	var sw journeyctl.SwitchResult
	e.runJSON(&sw, "rederive switch", "--json", "rederive", "switch")
	// switch returns once the projector runs v2.
	if sw.Live != "v2" || sw.Previous != "v1" || len(sw.Projectors) != 1 || sw.Projectors[0].Version != "v2" {
		t.Fatalf("switch = %+v, want live v2 after v1, one projector on v2", sw)
	}
	switched := map[string]string{}
	for k, v := range base {
		switched[k] = v
	}
	switched["c-a"], switched["c-g"] = "loyal_customer", "loyal_customer"
	waitFor(t, 30*time.Second, "the api serving v2's stages", func() bool { return reflect.DeepEqual(apiStages(t, url, fixtureIDs...), switched) })

	// The projector moved too: a second order of c-c makes it loyal under
	// v2, with one derived event that names v2's rules.
	derivedSwitched := derivedCount(t, e.js)
	order := func(id string, days int) touchpoint.Event {
		ev, err := touchpoint.New("test-fixture", "live-"+id, "c-c", now.Add(-time.Duration(days)*journey.Day).Truncate(time.Second),
			touchpoint.Order{OrderID: id, Status: "placed", Amount: touchpoint.Amount{Cents: 1000}, Currency: "EUR"})
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	publishFacts(t, e.js, []touchpoint.Event{order("c2", 5)})
	switched["c-c"] = "loyal_customer"
	waitFor(t, 30*time.Second, "the v2 projector applying c-c's second order", func() bool {
		return reflect.DeepEqual(apiStages(t, url, fixtureIDs...), switched)
	})
	if n := derivedCount(t, e.js); n != derivedSwitched+1 {
		t.Fatalf("c-c's second order under v2 made %d derived events, want 1", n-derivedSwitched)
	}
	if rv := lastDerivedRules(t, e.js); !strings.Contains(rv, "loyal=2/") {
		t.Fatalf("the derived stage_changed names rules %q, want v2's", rv)
	}

	var rb journeyctl.SwitchResult
	e.runJSON(&rb, "rederive rollback", "--json", "rederive", "rollback")
	// v1 caught up with the order it missed while v2 was live, silently:
	// under 3/365d two orders leave c-c a new_customer.
	if rb.Live != "v1" || rb.Previous != "v2" || rb.CatchUp.Events != 1 || len(rb.Projectors) != 1 || rb.Projectors[0].Version != "v1" {
		t.Fatalf("rollback = %+v, want live v1, previous v2, 1 event caught up", rb)
	}
	waitFor(t, 30*time.Second, "the api serving v1's stages again", func() bool { return reflect.DeepEqual(apiStages(t, url, fixtureIDs...), base) })
	if n := derivedCount(t, e.js); n != derivedSwitched+1 {
		t.Fatalf("the rollback's catch-up published %d derived events", n-derivedSwitched-1)
	}
	// And v1's projector is live again: a third order makes c-c loyal
	// under 3/365d, with v1's rules in its derived event.
	publishFacts(t, e.js, []touchpoint.Event{order("c3", 2)})
	base["c-c"] = "loyal_customer"
	waitFor(t, 30*time.Second, "the v1 projector applying c-c's third order", func() bool {
		return reflect.DeepEqual(apiStages(t, url, fixtureIDs...), base)
	})
	if n := derivedCount(t, e.js); n != derivedSwitched+2 {
		t.Fatalf("c-c's third order under v1 made %d derived events, want 1", n-derivedSwitched-1)
	}
	if rv := lastDerivedRules(t, e.js); rv != journey.RulesVersion {
		t.Fatalf("the derived stage_changed names rules %q, want %q", rv, journey.RulesVersion)
	}
	t.Logf("derived events: %d by the live projection, 0 by the shadow run and the catch-ups, 1 under v2, 1 under v1 again", derivedBefore)

	code, out, _ := e.run("--json", "status", "--sample", "100ms")
	var status journeyctl.Status
	if err := json.Unmarshal([]byte(out), &status); code != 0 || err != nil || status.Rules == nil {
		t.Fatalf("status exit %d: %v", code, err)
	}
	if r := status.Rules; r.Live.Version != "v1" || r.Live.Previous != "v2" || r.Versions != 2 || len(r.Projectors) != 1 || r.Projectors[0].Version != "v1" {
		t.Fatalf("status rules = %+v", r)
	}
	if n := e.count("SELECT count() FROM ops_audit WHERE action IN ('rederive.start', 'rederive.switch', 'rederive.rollback') AND outcome = 'ok'"); n != 3 {
		t.Fatalf("%d ok rederive audit rows, want 3", n)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// A projector that starts on a version whose consumers are behind the
// previous version's (a switch it was down for, or the moments around a
// live switch) applies the events in between without derived events: the
// previous version applied them live and emitted theirs. The stream's
// duplicate window is cut to 1s, so a repeat would be stored, not dropped.
func TestRederiveGapIsAppliedQuietly(t *testing.T) {
	t.Parallel() // its own NATS server and database
	e := newEnv(t)
	ctx := context.Background()
	e.dup = time.Second
	if err := e.config().Stream.Ensure(ctx, e.js); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	publishFacts(t, e.js, rederiveFixture(t, now))
	stop := e.startProjector(t)
	waitFor(t, time.Minute, "the live projection of the fixture", func() bool {
		return e.count("SELECT count() FROM (SELECT customer_id FROM customer_state GROUP BY customer_id)") == uint64(len(fixtureIDs))
	})
	if code, _, _ := e.run("rederive", "start", "--rules", "loyal=2/365d"); code != 0 {
		t.Fatalf("rederive start exit %d", code)
	}
	// c-h's first visit after the re-derive: v1 applies it live and emits
	// its none→prospect; v2's consumers have not seen it.
	visit, err := touchpoint.New("test-fixture", "gap-visit", "c-h", now.Add(-time.Hour).Truncate(time.Second), touchpoint.Visit{Common: touchpoint.Common{Channel: "web"}})
	if err != nil {
		t.Fatal(err)
	}
	publishFacts(t, e.js, []touchpoint.Event{visit})
	waitFor(t, 30*time.Second, "v1 projecting c-h", func() bool {
		return e.count("SELECT count() FROM customer_state WHERE customer_id = 'c-h'") > 0
	})
	stop()
	derived := derivedCount(t, e.js)
	time.Sleep(3 * time.Second) // past the duplicate window

	// The pointer moves while no projector runs, without a catch-up.
	ops, err := ruleset.Open(ctx, e.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	_, rev, err := ops.Live(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ops.SetLive(ctx, ruleset.Live{Version: "v2", Previous: "v1", At: time.Now()}, rev); err != nil {
		t.Fatal(err)
	}
	e.startProjector(t)
	waitFor(t, 30*time.Second, "v2 projecting c-h", func() bool {
		return e.count("SELECT count() FROM customer_state__v2 WHERE customer_id = 'c-h' AND stage = 'prospect'") > 0
	})
	if n := derivedCount(t, e.js); n != derived {
		t.Fatalf("v2 emitted %d derived events for the event v1 had applied live", n-derived)
	}
	// Past v1's floor v2 emits as usual: c-h's first order.
	order, err := touchpoint.New("test-fixture", "gap-order", "c-h", now.Add(-time.Minute).Truncate(time.Second),
		touchpoint.Order{OrderID: "h1", Status: "placed", Amount: touchpoint.Amount{Cents: 100}, Currency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	publishFacts(t, e.js, []touchpoint.Event{order})
	waitFor(t, 30*time.Second, "v2 emitting c-h's first order", func() bool { return derivedCount(t, e.js) == derived+1 })
	if rv := lastDerivedRules(t, e.js); !strings.Contains(rv, "loyal=2/") {
		t.Fatalf("derived event under rules %q, want v2's", rv)
	}
	t.Logf("derived events: %d before the gap, none for the gap event under v2, 1 after it", derived)
}

// Bad input is refused with what was wrong and the documented exit codes.
func TestRederiveRefusesBadInput(t *testing.T) {
	t.Parallel() // its own NATS server and database
	e := newEnv(t)
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"rederive", "start", "--rules", "loyal=0/365d"}, journeyctl.ExitUsage, "loyal orders must be at least 1"},
		{[]string{"rederive", "start", "--rules", "vip=1"}, journeyctl.ExitUsage, `unknown threshold "vip"`},
		{[]string{"rederive", "start", "--rules", "loyal=2/365d", "--name", "v1"}, journeyctl.ExitUsage, "v1 is the base"},
		{[]string{"rederive", "diff"}, journeyctl.ExitNotFound, "run journeyctl rederive start first"},
		{[]string{"rederive", "switch", "--version", "v7"}, journeyctl.ExitNotFound, "no such version"},
		{[]string{"rederive", "rollback"}, journeyctl.ExitNotFound, "nothing to roll back to"},
		{[]string{"rederive", "switch", "--version", "v1"}, journeyctl.ExitUsage, "v1 is live already"},
	} {
		code, _, errOut := e.run(c.args...)
		if code != c.code || !strings.Contains(errOut, c.says) {
			t.Errorf("%v: exit %d, stderr %q; want %d saying %q", c.args, code, errOut, c.code, c.says)
		}
	}
}
