package simulator

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/klantreis/journey/pkg/touchpoint"
)

var start = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)

// run generates n events and returns them with the decoded payloads.
func run(t *testing.T, o Options, n int) ([]touchpoint.Event, []touchpoint.Payload) {
	t.Helper()
	g := NewGenerator(o)
	evs := g.Generate(n)
	ps := make([]touchpoint.Payload, n)
	// Validate against a clock far in the future of the simulated time: the
	// events are history then, as in a backfill.
	now := evs[n-1].Time.Add(time.Hour)
	for i := range evs {
		p, err := touchpoint.Validate(&evs[i], now)
		if err != nil {
			t.Fatalf("event %d (%s) invalid: %v\ndata: %s", i, evs[i].Type, err, evs[i].Data)
		}
		ps[i] = p
	}
	return evs, ps
}

func TestEventsValidAndOrdered(t *testing.T) {
	for _, o := range []Options{
		{Seed: 1, Start: start},
		{Seed: 2, Start: start, Customers: 10, B2BShare: 1},
		{Seed: 3, Start: start, Customers: 50000, B2BShare: -1},
		{Seed: 4, Start: start, Customers: 1, Source: "acme.example/shop"},
	} {
		t.Run(fmt.Sprintf("seed%d", o.Seed), func(t *testing.T) {
			evs, _ := run(t, o, 20000)
			ids := map[string]bool{}
			for i, e := range evs {
				if i > 0 && e.Time.Before(evs[i-1].Time) {
					t.Fatalf("event %d at %s is before event %d at %s", i, e.Time, i-1, evs[i-1].Time)
				}
				if e.Time.Before(start) {
					t.Fatalf("event %d at %s is before the start %s", i, e.Time, start)
				}
				key := e.Source + "\x00" + e.ID
				if ids[key] {
					t.Fatalf("duplicate (source, id) %q/%q", e.Source, e.ID)
				}
				ids[key] = true
				if !e.Time.Equal(e.Time.Truncate(time.Millisecond)) {
					t.Fatalf("time %s has sub-millisecond precision; ClickHouse keeps ms", e.Time)
				}
			}
		})
	}
}

// TestPeek: Peek gives the next event's exact time and does not change the
// sequence.
func TestPeek(t *testing.T) {
	plain := NewGenerator(Options{Seed: 8, Start: start}).Generate(5000)
	g := NewGenerator(Options{Seed: 8, Start: start})
	for i := range plain {
		if i%3 == 0 {
			g.Peek()
		}
		at := g.Peek()
		e := g.Next()
		if !at.Equal(e.Time) {
			t.Fatalf("event %d: Peek said %s, the event is at %s", i, at, e.Time)
		}
		if !reflect.DeepEqual(e, plain[i]) {
			t.Fatalf("event %d differs when Peek is called: %+v vs %+v", i, e, plain[i])
		}
	}
}

func TestReproducible(t *testing.T) {
	a := NewGenerator(Options{Seed: 42, Start: start}).Generate(5000)
	b := NewGenerator(Options{Seed: 42, Start: start}).Generate(5000)
	if !reflect.DeepEqual(a, b) {
		for i := range a {
			if !reflect.DeepEqual(a[i], b[i]) {
				t.Fatalf("same seed, event %d differs:\n%+v\n%+v", i, a[i], b[i])
			}
		}
	}
	c := NewGenerator(Options{Seed: 43, Start: start}).Generate(5000)
	ids := map[string]bool{}
	for _, e := range a {
		ids[e.ID] = true
	}
	for _, e := range c {
		if ids[e.ID] {
			t.Fatalf("seeds 42 and 43 share event id %q: two runs would deduplicate each other", e.ID)
		}
	}
	if bytes.Equal(a[100].Data, c[100].Data) && a[100].Subject == c[100].Subject {
		t.Fatalf("seeds 42 and 43 gave the same event 100")
	}
}

// journey is what the test sees of one customer.
type journey struct {
	visits, quotesReq, placed, cancelled int
	opened, resolved, surveys            int
	contacts                             map[string]string
	account                              string
	orderIDs                             map[string]bool
	first, last                          time.Time
	orderTimes                           []time.Time
}

func TestDistributions(t *testing.T) {
	evs, ps := run(t, Options{Seed: 7, Start: start, Customers: 1000}, 60000)
	js := map[string]*journey{}
	scores := [11]int{}
	kinds := map[touchpoint.Kind]int{}
	for i, e := range evs {
		j := js[e.Subject]
		if j == nil {
			j = &journey{contacts: map[string]string{}, orderIDs: map[string]bool{}, first: e.Time}
			js[e.Subject] = j
			if e.Kind() != touchpoint.KindVisit {
				t.Fatalf("customer %s starts with a %s, want a visit", e.Subject, e.Kind())
			}
		}
		j.last = e.Time
		p := ps[i]
		kinds[e.Kind()]++
		if p.Has(touchpoint.FContactID) {
			if prev, ok := j.contacts[p.ContactID]; ok && prev != p.DMURole {
				t.Fatalf("contact %s changed role from %s to %s", p.ContactID, prev, p.DMURole)
			}
			j.contacts[p.ContactID] = p.DMURole
			if j.account != "" && j.account != p.AccountID {
				t.Fatalf("customer %s in two accounts", e.Subject)
			}
			j.account = p.AccountID
		}
		switch e.Kind() {
		case touchpoint.KindVisit:
			j.visits++
		case touchpoint.KindQuote:
			if p.Status == "requested" {
				j.quotesReq++
			}
		case touchpoint.KindOrder:
			switch p.Status {
			case "placed":
				j.placed++
				j.orderIDs[p.OrderID] = true
				j.orderTimes = append(j.orderTimes, e.Time)
			case "cancelled":
				if !j.orderIDs[p.OrderID] {
					t.Fatalf("order %s cancelled before it was placed", p.OrderID)
				}
				j.cancelled++
			}
		case touchpoint.KindComplaint:
			if p.Status == "opened" {
				j.opened++
			} else {
				j.resolved++
			}
		case touchpoint.KindSurvey:
			j.surveys++
			scores[p.Score]++
		}
	}
	n := float64(len(js))
	var quoted, buyers, repeat, b2b, complained, surveyed, dormant, busyAccounts, dmus int
	roles := map[string]int{}
	for _, j := range js {
		if j.quotesReq > 0 {
			quoted++
		}
		if j.placed > 0 {
			buyers++
		}
		if j.placed >= 2 {
			repeat++
		}
		if j.account != "" {
			b2b++
			if j.visits+j.placed >= 8 {
				busyAccounts++
				if len(j.contacts) >= 2 {
					dmus++
				}
			}
			for _, role := range j.contacts {
				roles[role]++
			}
		}
		if j.opened > 0 {
			complained++
		}
		if j.resolved > j.opened {
			t.Fatalf("more complaints resolved than opened")
		}
		if j.surveys > 0 {
			surveyed++
		}
		for i := 1; i < len(j.orderTimes); i++ {
			if j.orderTimes[i].Sub(j.orderTimes[i-1]) > 365*day {
				dormant++
				break
			}
		}
	}
	var resp, pro, det int
	for s, k := range scores {
		resp += k
		switch {
		case s >= 9:
			pro += k
		case s <= 6:
			det += k
		}
	}
	nps := 100 * float64(pro-det) / float64(resp)
	t.Logf("customers %d, kinds %v, quoted %.2f, buyers %.2f, repeat %.2f, b2b %.2f, complained %.2f, surveyed %.2f, won back after a year %d, NPS %+.0f (pro %.2f det %.2f)",
		len(js), kinds, float64(quoted)/n, float64(buyers)/n, float64(repeat)/n, float64(b2b)/n,
		float64(complained)/n, float64(surveyed)/n, dormant, nps, float64(pro)/float64(resp), float64(det)/float64(resp))
	within := func(name string, got, lo, hi float64) {
		t.Helper()
		if got < lo || got > hi {
			t.Errorf("%s = %.3f, want within [%.2f, %.2f]", name, got, lo, hi)
		}
	}
	// Sanity bands, wide on purpose: they catch a broken journey model
	// (nobody buys, everybody complains), not a tuning change.
	within("share that requests a quote", float64(quoted)/n, 0.05, 0.6)
	within("share that orders", float64(buyers)/n, 0.05, 0.6)
	within("share of buyers that repeat", float64(repeat)/float64(buyers), 0.2, 0.9)
	within("share of B2B accounts", float64(b2b)/n, 0.2, 0.4)
	within("share that complains", float64(complained)/n, 0.005, 0.2)
	within("share that answers a survey", float64(surveyed)/n, 0.02, 0.5)
	within("NPS", nps, -10, 50)
	within("promoter share", float64(pro)/float64(resp), 0.3, 0.6)
	within("detractor share", float64(det)/float64(resp), 0.1, 0.4)
	// An account acts through several contacts: among accounts with some
	// history, nearly all show more than one, and every DMU role occurs.
	within("share of busy accounts with several contacts", float64(dmus)/float64(busyAccounts), 0.9, 1)
	for _, role := range []string{"decision_maker", "influencer", "buyer", "user", "gatekeeper"} {
		if roles[role] == 0 {
			t.Errorf("no contact with DMU role %s", role)
		}
	}
	if dormant == 0 {
		t.Errorf("no customer went quiet for more than a year and came back")
	}
	for s, k := range scores {
		if k == 0 {
			t.Errorf("no survey answered %d in %d responses", s, resp)
		}
	}
}

// TestChurn: customers that stop buying exist, so the projector's 365-day
// rule has ex-customers to find in a long backfill.
func TestChurn(t *testing.T) {
	evs, ps := run(t, Options{Seed: 9, Start: start, Customers: 200}, 20000)
	end := evs[len(evs)-1].Time
	lastOrder := map[string]time.Time{}
	for i, e := range evs {
		if e.Kind() == touchpoint.KindOrder && ps[i].Status == "placed" {
			lastOrder[e.Subject] = e.Time
		}
	}
	churned := 0
	for _, at := range lastOrder {
		if end.Sub(at) > 365*day {
			churned++
		}
	}
	if end.Sub(start) < 400*day {
		t.Fatalf("20000 events of 200 customers span only %s; want more than a year", end.Sub(start))
	}
	if churned == 0 || churned == len(lastOrder) {
		t.Fatalf("%d of %d buyers churned; want some but not all", churned, len(lastOrder))
	}
}

func BenchmarkNext(b *testing.B) {
	g := NewGenerator(Options{Seed: 1, Start: start, Customers: 100000})
	b.ReportAllocs()
	var bytes int64
	for b.Loop() {
		e := g.Next()
		bytes += int64(len(e.Data))
	}
	b.SetBytes(bytes / int64(b.N))
}
