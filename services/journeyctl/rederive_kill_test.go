package journeyctl_test

import (
	"context"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/killtest"
	"github.com/klantreis/journey/internal/natsserver/natstest"
	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/projection"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
)

// manyJourneys makes n customers' visits, orders and cancellations over
// the past 700 days, deterministically.
func manyJourneys(t *testing.T, n int, now time.Time) []touchpoint.Event {
	r := mrand.New(mrand.NewPCG(7, 8))
	var out []touchpoint.Event
	for c := range n {
		cust := fmt.Sprintf("k-%04d", c)
		for i := range 3 + r.IntN(10) {
			d := 1 + r.IntN(700)
			if d >= 363 && d <= 367 { // no expiry near the clock
				d += 5
			}
			at := now.Add(-time.Duration(d) * journey.Day).Truncate(time.Second).Add(time.Duration(i) * time.Millisecond)
			var p touchpoint.Typed = touchpoint.Visit{Common: touchpoint.Common{Channel: "web"}}
			switch x := r.IntN(10); {
			case x < 6:
				p = touchpoint.Order{OrderID: fmt.Sprint("o", r.IntN(5)), Status: "placed", Amount: touchpoint.Amount{Cents: 100}, Currency: "EUR"}
			case x < 7:
				p = touchpoint.Order{OrderID: fmt.Sprint("o", r.IntN(5)), Status: "cancelled", Amount: touchpoint.Amount{Cents: 100}, Currency: "EUR"}
			}
			e, err := touchpoint.New("test-kill", fmt.Sprintf("%d-%d", c, i), cust, at, p)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, e)
		}
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func publishAsync(t *testing.T, js jetstream.JetStream, events []touchpoint.Event) {
	t.Helper()
	natstest.PublishFacts(t, js, events, 256)
}

// v2Reference is the rules v2 runs (loyal=2/365d) and every customer's
// events as those rules take them: what the re-derive tests compare v2's
// stored states with.
func v2Reference(t *testing.T, events []touchpoint.Event, now time.Time) (*journey.Rulebook, map[string][]journey.Event) {
	t.Helper()
	rules, _ := journey.NewRulebook(journey.Rules{LoyalOrders: 2, LoyalWindow: 365 * journey.Day, InactiveAfter: 365 * journey.Day})
	by := map[string][]journey.Event{}
	for i := range events {
		p, err := touchpoint.Validate(&events[i], now)
		if err != nil {
			t.Fatal(err)
		}
		by[events[i].Subject] = append(by[events[i].Subject], journey.FromTouchpoint(&events[i], &p, 0))
	}
	return rules, by
}

// storedRecord is customer id's record in the state bucket kv.
func storedRecord(t *testing.T, kv jetstream.KeyValue, id string) *projection.Record {
	t.Helper()
	ent, err := kv.Get(context.Background(), stream.CustomerKey(id))
	if err != nil {
		t.Fatalf("state of %s: %v", id, err)
	}
	rec, err := projection.DecodeRecord(ent.Value())
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// acked is how many events v2's consumers acknowledged, and whether none
// is left.
func acked(js jetstream.JetStream, partitions int) (uint64, bool) {
	var n uint64
	done := true
	for p := range partitions {
		c, err := js.Consumer(context.Background(), stream.TouchpointStream, "journey-projector-v2-p"+strconv.Itoa(p))
		if err != nil {
			return n, false
		}
		info, err := c.Info(context.Background())
		if err != nil {
			return n, false
		}
		n += info.Delivered.Consumer - uint64(info.NumAckPending)
		done = done && info.NumPending == 0 && info.NumAckPending == 0
	}
	return n, done
}

// A re-derive killed with SIGKILL mid-run and started again ends with
// exactly the states the pure rules give, once per customer.
func TestRederiveKilledResumes(t *testing.T) {
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" {
		t.Skip("needs SIGKILL")
	}
	e := newEnv(t)
	now := time.Now().UTC()
	events := manyJourneys(t, 1500, now)
	publishAsync(t, e.js, events)

	bin := buildCmd(t, "services/journeyctl/cmd/journeyctl")
	env := e.childEnv()
	run := func() *exec.Cmd {
		cmd := exec.Command(bin, "--json", "--actor", "test:kill", "rederive", "start", "--rules", "loyal=2/365d")
		cmd.Env = env
		return cmd
	}
	cmd := run()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	total := uint64(len(events))
	killtest.Midway(t, cmd, "journeyctl rederive", total/5, 2*time.Minute, func() (uint64, bool) {
		return acked(e.js, stream.DefaultTopology().Partitions)
	})
	out, err := run().Output()
	if err != nil {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	var res struct {
		Version string `json:"version"`
		Resumed bool   `json:"resumed"`
		Events  int    `json:"events"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if res.Version != "v2" || !res.Resumed {
		t.Fatalf("second run %+v, want v2 resumed", res)
	}
	t.Logf("second run applied %d of %d events", res.Events, total)

	// The reference: the pure rules over every customer's events.
	rules, by := v2Reference(t, events, now)
	kv, err := e.js.KeyValue(context.Background(), "journey_customers__v2")
	if err != nil {
		t.Fatal(err)
	}
	stages := map[string]string{}
	rows, err := e.db.Conn.Query(context.Background(), "SELECT customer_id, argMax(CAST(stage AS String), version), count() FROM customer_state__v2 GROUP BY customer_id")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, st string
		var n uint64
		if err := rows.Scan(&id, &st, &n); err != nil {
			t.Fatal(err)
		}
		stages[id] = st
	}
	rows.Close()
	if len(stages) != len(by) {
		t.Fatalf("customer_state__v2 holds %d customers, want %d", len(stages), len(by))
	}
	differ := 0
	for id, evs := range by {
		s := journey.NewState(id)
		rules.Apply(s, time.Now(), evs...)
		rec := storedRecord(t, kv, id)
		if rec.State.Stage() != s.Stage() || len(rec.State.History) != len(s.History) || stages[id] != string(s.Stage()) {
			differ++
			if differ <= 3 {
				t.Errorf("%s: stored %s (%d transitions), table %s; rules give %s (%d)", id, rec.State.Stage(), len(rec.State.History), stages[id], s.Stage(), len(s.History))
			}
		}
	}
	if differ > 0 {
		t.Fatalf("%d of %d customers differ from the rules", differ, len(by))
	}
	var dup uint64
	if err := e.db.Conn.QueryRow(context.Background(), "SELECT count() FROM (SELECT customer_id, idx FROM stage_transitions__v2 FINAL WHERE valid = 1 GROUP BY customer_id, idx HAVING count() > 1)").Scan(&dup); err != nil {
		t.Fatal(err)
	}
	if dup != 0 {
		t.Fatalf("%d transitions stored twice", dup)
	}
	t.Logf("%d customers, %d events: every state as the rules give it after the kill and the resume", len(by), total)
}
