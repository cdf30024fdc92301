package projection_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/projection"
	"github.com/klantreis/journey/pkg/touchpoint"
)

// memStore is an in-memory Store with compare-and-set, counting writes.
type memStore struct {
	mu   sync.Mutex
	recs map[string][]byte
	revs map[string]uint64
	rev  uint64
	puts int
	fail error
}

func newMemStore() *memStore { return &memStore{recs: map[string][]byte{}, revs: map[string]uint64{}} }

func (m *memStore) Get(_ context.Context, id string) (*projection.Record, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return getJSON[projection.Record](m.recs, m.revs, id)
}

func (m *memStore) Put(_ context.Context, puts []projection.Put) ([]uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, m.fail
	}
	out := make([]uint64, len(puts))
	for i, p := range puts {
		if m.revs[p.CustomerID] != p.Rev {
			return nil, fmt.Errorf("%w: %s", projection.ErrConflict, p.CustomerID)
		}
		raw, err := json.Marshal(p.Record)
		if err != nil {
			return nil, err
		}
		m.rev++
		m.recs[p.CustomerID], m.revs[p.CustomerID] = raw, m.rev
		out[i] = m.rev
		m.puts++
	}
	return out, nil
}

type memSink struct {
	writes  int
	updates []projection.Update
	fail    error
}

func (s *memSink) Write(_ context.Context, u []projection.Update) error {
	if s.fail != nil {
		return s.fail
	}
	s.writes++
	s.updates = append(s.updates, u...)
	return nil
}

type memEmitter struct{ events []touchpoint.Event }

func (e *memEmitter) Emit(_ context.Context, ev []touchpoint.Event) error {
	e.events = append(e.events, ev...)
	return nil
}

type memIndex struct{ at map[string]time.Time }

func (x *memIndex) Set(_ context.Context, es []projection.Expiry) error {
	for _, e := range es {
		if e.At.IsZero() {
			delete(x.at, e.CustomerID)
		} else {
			x.at[e.CustomerID] = e.At
		}
	}
	return nil
}

type fixture struct {
	store *memStore
	sink  *memSink
	emit  *memEmitter
	index *memIndex
	now   time.Time
	p     *projection.Projector
}

func newFixture(t *testing.T, store *memStore) *fixture {
	t.Helper()
	rb, err := journey.NewRulebook(journey.DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: store, sink: &memSink{}, emit: &memEmitter{}, index: &memIndex{at: map[string]time.Time{}},
		now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f.p, err = projection.New(projection.Options{Rules: rb, Store: f.store, Sink: f.sink, Emitter: f.emit, Index: f.index,
		Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

var base = time.Date(2025, 1, 10, 9, 0, 0, 0, time.UTC)

func msg(seq uint64, customer string, k touchpoint.Kind, day int, mod func(*journey.Event)) projection.Msg {
	e := journey.Event{Source: "src", ID: fmt.Sprint("e", seq), Seq: seq, Time: base.Add(time.Duration(day) * journey.Day), Kind: k}
	if mod != nil {
		mod(&e)
	}
	return projection.Msg{Seq: seq, CustomerID: customer, Event: e, SurveyID: "nps"}
}

func placed(id string) func(*journey.Event) {
	return func(e *journey.Event) { e.OrderID, e.Status = id, journey.StatusPlaced }
}

// consents gives the event a marketing consent answer (at_risk goes out
// only with a grant).
func consents(granted bool) func(*journey.Event) {
	return func(e *journey.Event) {
		e.Consent = []touchpoint.ConsentAnswer{{Purpose: touchpoint.PurposeMarketing, Granted: granted}}
	}
}

func score(n int) func(*journey.Event) { return func(e *journey.Event) { e.Score = n } }

func kinds(evs []touchpoint.Event) map[touchpoint.Kind]int {
	out := map[touchpoint.Kind]int{}
	for _, e := range evs {
		out[e.Kind()]++
	}
	return out
}

func TestProcessCoalescesAndIgnoresRedelivery(t *testing.T) {
	t.Parallel()
	f := newFixture(t, newMemStore())
	ctx := context.Background()
	batch := []projection.Msg{
		msg(1, "a", touchpoint.KindVisit, 0, consents(true)),
		msg(2, "b", touchpoint.KindVisit, 0, nil),
		msg(3, "a", touchpoint.KindOrder, 1, placed("o1")),
		msg(4, "a", touchpoint.KindSurvey, 2, score(3)),
	}
	if _, err := f.p.Process(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if f.store.puts != 2 || f.sink.writes != 1 {
		t.Fatalf("puts %d (want one per customer: 2), sink writes %d", f.store.puts, f.sink.writes)
	}
	k := kinds(f.emit.events)
	// a: none->new_customer (one stage event for the batch), satisfaction,
	// at_risk (detractor, marketing consent given); b: prospect.
	if k[touchpoint.KindStageChanged] != 2 || k[touchpoint.KindSatisfactionChanged] != 1 || k[touchpoint.KindAtRisk] != 1 {
		t.Fatalf("derived %v", k)
	}
	if f.index.at["a"].IsZero() || !f.index.at["a"].Equal(base.Add(366*journey.Day)) {
		t.Fatalf("index %v", f.index.at)
	}
	// Redelivery: nothing written, nothing emitted.
	n := len(f.emit.events)
	if _, err := f.p.Process(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if f.store.puts != 2 || f.sink.writes != 1 || len(f.emit.events) != n {
		t.Fatalf("redelivery wrote: puts %d sink %d emitted %d", f.store.puts, f.sink.writes, len(f.emit.events)-n)
	}
	// Schemas hold for every derived event.
	schemas, err := touchpoint.Schemas()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range f.emit.events {
		if err := schemas.ValidateData(e.Type, e.Data); err != nil {
			t.Fatalf("%s: %v\n%s", e.Type, err, e.Data)
		}
	}
}

func TestFailedCommitIsRetriedToTheSameResult(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	batch := []projection.Msg{msg(1, "a", touchpoint.KindOrder, 0, placed("o1")), msg(2, "a", touchpoint.KindOrder, 5, placed("o2"))}

	clean := newFixture(t, newMemStore())
	if _, err := clean.p.Process(ctx, batch); err != nil {
		t.Fatal(err)
	}

	f := newFixture(t, newMemStore())
	f.sink.fail = errors.New("clickhouse down")
	if _, err := f.p.Process(ctx, batch); err == nil {
		t.Fatal("a failed warehouse write must fail the batch")
	}
	if f.store.puts != 0 {
		t.Fatal("state written although the warehouse write failed")
	}
	f.sink.fail = nil
	f.store.fail = errors.New("nats down")
	if _, err := f.p.Process(ctx, batch); err == nil {
		t.Fatal("a failed state write must fail the batch")
	}
	f.store.fail = nil
	if _, err := f.p.Process(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if string(f.store.recs["a"]) != string(clean.store.recs["a"]) {
		t.Fatalf("after retries\n%s\nwant\n%s", f.store.recs["a"], clean.store.recs["a"])
	}
	// Derived events of the retries carry the same ids: the stream drops them.
	ids := map[string]int{}
	for _, e := range f.emit.events {
		ids[e.ID]++
	}
	for _, e := range clean.emit.events {
		if ids[e.ID] == 0 {
			t.Fatalf("retry emitted a different id for %s", e.Type)
		}
	}
}

func TestConflictReloads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := newMemStore()
	f := newFixture(t, store)
	if _, err := f.p.Process(ctx, []projection.Msg{msg(1, "a", touchpoint.KindVisit, 0, nil)}); err != nil {
		t.Fatal(err)
	}
	// Another writer updates "a" behind the projector's cache.
	other := newFixture(t, store)
	if _, err := other.p.Process(ctx, []projection.Msg{msg(2, "a", touchpoint.KindOrder, 1, placed("o1"))}); err != nil {
		t.Fatal(err)
	}
	_, err := f.p.Process(ctx, []projection.Msg{msg(3, "a", touchpoint.KindOrder, 2, placed("o2"))})
	if !errors.Is(err, projection.ErrConflict) {
		t.Fatalf("want a conflict, got %v", err)
	}
	if _, err := f.p.Process(ctx, []projection.Msg{msg(3, "a", touchpoint.KindOrder, 2, placed("o2"))}); err != nil {
		t.Fatal(err)
	}
	rec, _, _ := store.Get(ctx, "a")
	if rec.State.CountedOrders() != 2 {
		t.Fatalf("the retry lost the other writer's order: %d", rec.State.CountedOrders())
	}
}

func TestSweepMovesExpiredCustomers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, newMemStore())
	f.now = base.Add(10 * journey.Day)
	if _, err := f.p.Process(ctx, []projection.Msg{msg(1, "a", touchpoint.KindOrder, 0, placed("o1")), msg(2, "b", touchpoint.KindVisit, 0, nil)}); err != nil {
		t.Fatal(err)
	}
	if n, _, err := f.p.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("early sweep: %d %v", n, err)
	}
	f.now = base.Add(400 * journey.Day)
	before := len(f.emit.events)
	n, _, err := f.p.Sweep(ctx)
	if err != nil || n != 1 {
		t.Fatalf("sweep: %d %v", n, err)
	}
	rec, _, _ := f.store.Get(ctx, "a")
	h := rec.State.History
	if rec.State.Stage() != journey.StageExCustomer || !h[len(h)-1].At.Equal(base.Add(365*journey.Day)) {
		t.Fatalf("after sweep: %s %v", rec.State.Stage(), h[len(h)-1])
	}
	ev := f.emit.events[before:]
	if len(ev) != 1 || ev[0].Kind() != touchpoint.KindStageChanged || !ev[0].Time.Equal(base.Add(365*journey.Day)) {
		t.Fatalf("sweep derived %v", ev)
	}
	if _, ok := f.index.at["a"]; ok || f.p.Scheduled() != 0 {
		t.Fatalf("index after sweep %v, scheduled %d", f.index.at, f.p.Scheduled())
	}
	// A stale index entry (a restart that saw an older expiry) is corrected.
	f.p.Schedule("b", base)
	if n, _, err := f.p.Sweep(ctx); err != nil || n != 1 || f.p.Scheduled() != 0 {
		t.Fatalf("stale entry: %d %v scheduled %d", n, err, f.p.Scheduled())
	}
}

// batchStore adds GetMany to a memStore; it can cut replies short (the
// ids of truncate go to missing) or fail every batched read.
type batchStore struct {
	*memStore
	truncate map[string]bool
	fail     error
	calls    int
}

func (b *batchStore) GetMany(ctx context.Context, ids []string) (map[string]projection.Got, []string, error) {
	b.calls++
	if b.fail != nil {
		return nil, nil, b.fail
	}
	found := map[string]projection.Got{}
	var missing []string
	for _, id := range ids {
		if b.truncate[id] {
			missing = append(missing, id)
			continue
		}
		rec, rev, err := b.Get(ctx, id)
		if errors.Is(err, projection.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		found[id] = projection.Got{Record: rec, Rev: rev}
	}
	return found, missing, nil
}

// A cold projector reading through GetMany (complete, truncated or failing)
// ends with the same records as one reading customer by customer.
func TestBatchedReadsMatchSingleReads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	first := []projection.Msg{msg(1, "a", touchpoint.KindVisit, 0, nil), msg(2, "b", touchpoint.KindOrder, 0, placed("o1")),
		msg(3, "c", touchpoint.KindSurvey, 1, score(9))}
	second := []projection.Msg{msg(4, "a", touchpoint.KindOrder, 2, placed("o2")), msg(5, "b", touchpoint.KindOrder, 3, placed("o3")),
		msg(6, "c", touchpoint.KindSurvey, 4, score(3)), msg(7, "d", touchpoint.KindVisit, 4, nil)}
	run := func(store projection.Store, mem *memStore) map[string]string {
		t.Helper()
		for _, batch := range [][]projection.Msg{first, second} {
			// A new projector per batch: its cache is cold, as after a restart.
			rb, err := journey.NewRulebook(journey.DefaultRules())
			if err != nil {
				t.Fatal(err)
			}
			p, err := projection.New(projection.Options{Rules: rb, Store: store, Sink: &memSink{}, Emitter: &memEmitter{},
				Index: &memIndex{at: map[string]time.Time{}}, Now: func() time.Time { return base.Add(10 * journey.Day) }})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.Process(ctx, batch); err != nil {
				t.Fatal(err)
			}
		}
		out := map[string]string{}
		for id, raw := range mem.recs {
			out[id] = string(raw)
		}
		return out
	}
	plain := newMemStore()
	want := run(plain, plain)
	if len(want) != 4 {
		t.Fatalf("want 4 customers, got %d", len(want))
	}
	for name, b := range map[string]*batchStore{
		"complete":  {memStore: newMemStore()},
		"truncated": {memStore: newMemStore(), truncate: map[string]bool{"b": true, "d": true}},
		"failing":   {memStore: newMemStore(), fail: errors.New("no batched reads")},
	} {
		got := run(b, b.memStore)
		if b.calls == 0 {
			t.Fatalf("%s: GetMany was not used", name)
		}
		for id, w := range want {
			if got[id] != w {
				t.Errorf("%s: customer %s:\n got %s\nwant %s", name, id, got[id], w)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d customers, want %d", name, len(got), len(want))
		}
	}
}

// at_risk is marketing automation: it goes out only for a customer whose
// latest marketing answer is a grant, and a withdrawal in the same batch
// as what makes them at risk holds already.
func TestAtRiskNeedsMarketingConsent(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		batch  []projection.Msg
		atRisk int
	}{
		{"no answer", []projection.Msg{msg(1, "a", touchpoint.KindVisit, 0, nil), msg(2, "a", touchpoint.KindSurvey, 1, score(2))}, 0},
		{"granted", []projection.Msg{msg(1, "a", touchpoint.KindVisit, 0, consents(true)), msg(2, "a", touchpoint.KindSurvey, 1, score(2))}, 1},
		{"granted, then withdrawn in the batch", []projection.Msg{msg(1, "a", touchpoint.KindVisit, 0, consents(true)),
			msg(2, "a", touchpoint.KindVisit, 1, consents(false)), msg(3, "a", touchpoint.KindSurvey, 2, score(2))}, 0},
		{"withdrawn, then granted", []projection.Msg{msg(1, "a", touchpoint.KindVisit, 0, consents(false)),
			msg(2, "a", touchpoint.KindVisit, 1, consents(true)), msg(3, "a", touchpoint.KindSurvey, 2, score(2))}, 1},
	}
	for _, c := range cases {
		f := newFixture(t, newMemStore())
		if _, err := f.p.Process(context.Background(), c.batch); err != nil {
			t.Fatal(err)
		}
		k := kinds(f.emit.events)
		if k[touchpoint.KindAtRisk] != c.atRisk || k[touchpoint.KindSatisfactionChanged] != 1 {
			t.Errorf("%s: derived %v, want %d at_risk and the satisfaction change", c.name, k, c.atRisk)
		}
	}
}

// A correction without a History to re-derive from fails the batch
// instead of being merged into facts it contradicts.
func TestCorrectionWithoutHistoryFails(t *testing.T) {
	t.Parallel()
	f := newFixture(t, newMemStore())
	ctx := context.Background()
	if _, err := f.p.Process(ctx, []projection.Msg{msg(1, "a", touchpoint.KindOrder, 0, placed("o1"))}); err != nil {
		t.Fatal(err)
	}
	fix := msg(2, "a", touchpoint.KindQuote, 0, func(e *journey.Event) { e.ID, e.Revision = "e1", 1 })
	if _, err := f.p.Process(ctx, []projection.Msg{fix}); !errors.Is(err, projection.ErrOptions) {
		t.Fatalf("%v, want ErrOptions", err)
	}
}

// A customer already at risk who consents later is reported then: the
// consent is what automation waited for. Withdrawing again stops it.
func TestAtRiskGoesOutWhenConsentFollows(t *testing.T) {
	t.Parallel()
	f := newFixture(t, newMemStore())
	ctx := context.Background()
	steps := []struct {
		msg    projection.Msg
		atRisk int
	}{
		{msg(1, "a", touchpoint.KindSurvey, 0, score(1)), 0},
		{msg(2, "a", touchpoint.KindVisit, 1, consents(true)), 1},
		{msg(3, "a", touchpoint.KindVisit, 2, consents(false)), 1},
		{msg(4, "a", touchpoint.KindSurvey, 3, score(0)), 1},
	}
	for i, s := range steps {
		if _, err := f.p.Process(ctx, []projection.Msg{s.msg}); err != nil {
			t.Fatal(err)
		}
		if k := kinds(f.emit.events); k[touchpoint.KindAtRisk] != s.atRisk {
			t.Fatalf("after step %d: %d at_risk events, want %d", i, k[touchpoint.KindAtRisk], s.atRisk)
		}
	}
}
