package projection_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/klantreis/journey/pkg/account"
	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/projection"
	"github.com/klantreis/journey/pkg/touchpoint"
)

// memAccounts is an AccountStore in memory that stores JSON (as the KV
// store does) and can make the next account puts lose their
// compare-and-set, as if another process had written first.
type memAccounts struct {
	mu       sync.Mutex
	rev      uint64
	accounts map[string][]byte
	arevs    map[string]uint64
	contacts map[string][]byte
	crevs    map[string]uint64
	// interfere, when set, runs before an account put: another writer.
	interfere func(id string)
}

func newMemAccounts() *memAccounts {
	return &memAccounts{accounts: map[string][]byte{}, arevs: map[string]uint64{}, contacts: map[string][]byte{}, crevs: map[string]uint64{}}
}

func (m *memAccounts) GetAccount(_ context.Context, id string) (*projection.AccountRecord, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return getJSON[projection.AccountRecord](m.accounts, m.arevs, id)
}

func (m *memAccounts) PutAccount(_ context.Context, r *projection.AccountRecord, rev uint64) (uint64, error) {
	id := r.State.AccountID
	if f := m.interfere; f != nil {
		m.interfere = nil
		f(id)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.arevs[id] != rev {
		return 0, fmt.Errorf("%w: %s", projection.ErrConflict, id)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return 0, err
	}
	m.rev++
	m.accounts[id], m.arevs[id] = b, m.rev
	return m.rev, nil
}

func (m *memAccounts) GetContact(_ context.Context, k string) (*account.Contact, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return getJSON[account.Contact](m.contacts, m.crevs, k)
}

func (m *memAccounts) PutContact(_ context.Context, k string, c *account.Contact, rev uint64) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.crevs[k] != rev {
		return 0, projection.ErrConflict
	}
	b, _ := json.Marshal(c)
	m.rev++
	m.contacts[k], m.crevs[k] = b, m.rev
	return m.rev, nil
}

type memAccountSink struct{ rows []projection.AccountUpdate }

func (s *memAccountSink) WriteAccounts(_ context.Context, u []projection.AccountUpdate) error {
	s.rows = append(s.rows, u...)
	return nil
}

// flakyEmitter fails the calls whose number is in fail.
type flakyEmitter struct {
	calls  int
	fail   map[int]bool
	events []touchpoint.Event
}

func (e *flakyEmitter) Emit(_ context.Context, ev []touchpoint.Event) error {
	e.calls++
	if e.fail[e.calls] {
		return errors.New("emit: broker away")
	}
	e.events = append(e.events, ev...)
	return nil
}

var at0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func b2bMsg(customer, contact, acct, role, id string, k touchpoint.Kind, at time.Time) projection.Msg {
	return projection.Msg{CustomerID: customer, Event: journey.Event{Source: "t", ID: id, Time: at, Kind: k,
		AccountID: acct, ContactID: contact, DMURole: role}}
}

func newAccounts(t *testing.T, st projection.AccountStore, sink projection.AccountSink, em projection.Emitter) *projection.Accounts {
	t.Helper()
	rules, err := account.New(account.DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	a, err := projection.NewAccounts(projection.AccountOptions{Rules: rules, Store: st, Sink: sink, Emitter: em,
		Now: func() time.Time { return at0.Add(24 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Two partitions update one account at once: the loser re-reads and
// re-applies, the state holds both, and the loser's first attempt
// published nothing.
func TestAccountsConcurrentUpdateLosesNothingAndInventsNothing(t *testing.T) {
	t.Parallel()
	st := newMemAccounts()
	em := &flakyEmitter{}
	sink := &memAccountSink{}
	a := newAccounts(t, st, sink, em)
	b := newAccounts(t, st, sink, em)
	st.interfere = func(string) {
		// b commits another customer's visit between a's read and a's put.
		if err := b.Apply(context.Background(), []projection.Msg{b2bMsg("c2", "uma", "acme", "user", "v2", touchpoint.KindVisit, at0.Add(time.Hour))}); err != nil {
			t.Error(err)
		}
	}
	if err := a.Apply(context.Background(), []projection.Msg{b2bMsg("c1", "bob", "acme", "buyer", "o1", touchpoint.KindOrder, at0)}); err != nil {
		t.Fatal(err)
	}
	rec, _, err := st.GetAccount(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rec.State.Members); n != 2 || len(rec.Pending) != 0 {
		t.Fatalf("members %d pending %d, want both contacts and nothing pending", n, len(rec.Pending))
	}
	var stages []string
	for _, e := range em.events {
		var d struct{ From, To string }
		_ = json.Unmarshal(e.Data, &d)
		stages = append(stages, string(e.Kind())+":"+d.From+">"+d.To)
	}
	// b's commit made a prospect (none>prospect); a's retry saw prospect and
	// kept it (the order event has no status: no order counted). Nothing
	// from a's lost attempt (which would say none>prospect with its own
	// causes a second time) was published.
	if len(stages) != 1 || stages[0] != "account_stage_changed:none>prospect" {
		t.Fatalf("derived events %v, want exactly b's none>prospect", stages)
	}
}

// syncEmitter and syncSink are safe for the partitions of one process.
type syncEmitter struct {
	mu     sync.Mutex
	events []touchpoint.Event
}

func (e *syncEmitter) Emit(_ context.Context, ev []touchpoint.Event) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.events = append(e.events, ev...)
	return nil
}

type syncSink struct {
	mu   sync.Mutex
	rows int
}

func (s *syncSink) WriteAccounts(_ context.Context, u []projection.AccountUpdate) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rows += len(u)
	return nil
}

// The partitions of one process share one Accounts and its cache: batches
// of many customers of one account, applied side by side, all land, and
// (under -race) no record is read by one partition while another changes
// it.
func TestAccountsPartitionsOfOneProcessShareAnAccount(t *testing.T) {
	t.Parallel()
	st := newMemAccounts()
	em := &syncEmitter{}
	a := newAccounts(t, st, &syncSink{}, em)
	const parts, batches = 4, 25
	var wg sync.WaitGroup
	for p := 0; p < parts; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := 0; b < batches; b++ {
				c := fmt.Sprintf("c%d-%d", p, b)
				k := touchpoint.KindVisit
				if b%5 == 0 {
					k = touchpoint.KindQuote
				}
				msg := b2bMsg(c, "x"+c, "acme", "user", "e"+c, k, at0.Add(time.Duration(b)*time.Minute))
				if err := a.Apply(context.Background(), []projection.Msg{msg}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	rec, _, err := st.GetAccount(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rec.State.Members); n != parts*batches || len(rec.Pending) != 0 {
		t.Fatalf("members %d pending %d, want %d and nothing pending", n, len(rec.Pending), parts*batches)
	}
	seen := map[string]bool{}
	for _, e := range em.events {
		if seen[e.ID] {
			t.Fatalf("derived event %s published twice", e.ID)
		}
		seen[e.ID] = true
	}
}

// The broker fails after the state is committed: the events stay pending
// in the record and the next reader publishes them.
func TestAccountsPendingEventsSurviveAFailedEmit(t *testing.T) {
	t.Parallel()
	st := newMemAccounts()
	em := &flakyEmitter{fail: map[int]bool{1: true}}
	a := newAccounts(t, st, &memAccountSink{}, em)
	msgs := []projection.Msg{b2bMsg("c1", "dora", "acme", "decision_maker", "v1", touchpoint.KindVisit, at0)}
	if err := a.Apply(context.Background(), msgs); err == nil {
		t.Fatal("a failed emit must fail the batch")
	}
	rec, _, _ := st.GetAccount(context.Background(), "acme")
	if len(rec.Pending) != 1 || len(em.events) != 0 {
		t.Fatalf("pending %d published %d, want 1 pending and none published", len(rec.Pending), len(em.events))
	}
	// The batch is re-run: the facts are held (no change), the pending
	// event is published and cleared.
	if err := a.Apply(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	rec, _, _ = st.GetAccount(context.Background(), "acme")
	if len(rec.Pending) != 0 || len(em.events) != 1 || em.events[0].Kind() != touchpoint.KindAccountStageChanged {
		t.Fatalf("pending %d published %v, want the stage change published once", len(rec.Pending), em.events)
	}
	// And a third run publishes nothing more.
	if err := a.Apply(context.Background(), msgs); err != nil || len(em.events) != 1 {
		t.Fatalf("re-run: err %v, published %d", err, len(em.events))
	}
}

// A contact's event for a new account reaches its old account through the
// directory, which then lists it as a former member.
func TestAccountsContactMoveReachesTheOldAccount(t *testing.T) {
	t.Parallel()
	st := newMemAccounts()
	a := newAccounts(t, st, &memAccountSink{}, &flakyEmitter{})
	ctx := context.Background()
	if err := a.Apply(ctx, []projection.Msg{b2bMsg("c1", "max", "acme", "influencer", "v1", touchpoint.KindVisit, at0)}); err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(ctx, []projection.Msg{b2bMsg("c1", "max", "globex", "influencer", "v2", touchpoint.KindVisit, at0.Add(time.Hour))}); err != nil {
		t.Fatal(err)
	}
	rules, _ := account.New(account.DefaultRules())
	for id, want := range map[string][2]int{"acme": {0, 1}, "globex": {1, 0}} {
		rec, _, err := st.GetAccount(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		v := rules.View(rec.State, at0.Add(2*time.Hour))
		if len(v.Members) != want[0] || v.Former != want[1] {
			t.Errorf("%s: members %d former %d, want %v", id, len(v.Members), v.Former, want)
		}
	}
}

// An event that changes nothing of its customer (an older visit after a
// newer one) still reaches its account: found by the projector's SIGKILL
// test, where such events were missing from the accounts.
func TestAccountsGetEventsThatChangeNoCustomer(t *testing.T) {
	t.Parallel()
	rb, err := journey.New(journey.DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	st := newMemAccounts()
	acc := newAccounts(t, st, &memAccountSink{}, &flakyEmitter{})
	p, err := projection.New(projection.Options{Rules: rb, Store: newMemStore(), Sink: &memSink{}, Emitter: &memEmitter{},
		Index: &memIndex{at: map[string]time.Time{}}, Accounts: acc, Now: func() time.Time { return at0.Add(24 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// bob visits twice; then dora's visit between the two arrives: the
	// customer's state does not change (neither its first nor its last
	// touch), the account's does (a second contact).
	if _, err := p.Process(ctx, []projection.Msg{b2bMsg("c1", "bob", "acme", "buyer", "v1", touchpoint.KindVisit, at0.Add(time.Hour)),
		b2bMsg("c1", "bob", "acme", "buyer", "v3", touchpoint.KindVisit, at0.Add(3*time.Hour))}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Process(ctx, []projection.Msg{b2bMsg("c1", "dora", "acme", "decision_maker", "v2", touchpoint.KindVisit, at0.Add(2*time.Hour))}); err != nil {
		t.Fatal(err)
	}
	rec, _, err := st.GetAccount(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.State.Members) != 2 {
		t.Fatalf("acme has %d members, want bob and dora", len(rec.State.Members))
	}
}

// Time alone opens a gap: the sweep finds the account due, rewrites it
// and emits account.dmu_gap; a second sweep finds nothing to do.
func TestAccountsSweepOpensAGapWithTime(t *testing.T) {
	t.Parallel()
	rules, err := account.New(account.DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	now := at0.Add(time.Hour)
	st, em, sink := newMemAccounts(), &flakyEmitter{}, &memAccountSink{}
	a, err := projection.NewAccounts(projection.AccountOptions{Rules: rules, Store: st, Sink: sink, Emitter: em,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	q := b2bMsg("c1", "ivo", "acme", "influencer", "q1", touchpoint.KindQuote, at0)
	q.Event.QuoteID, q.Event.Status = "Q1", account.QuoteSent
	if err := a.Apply(ctx, []projection.Msg{b2bMsg("c1", "dora", "acme", "decision_maker", "v1", touchpoint.KindVisit, at0), q}); err != nil {
		t.Fatal(err)
	}
	if n, err := a.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("sweep before anything is due: %d, %v", n, err)
	}
	now = at0.Add(31 * journey.Day)
	if n, err := a.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("sweep after the gap window: %d accounts, %v; want 1", n, err)
	}
	var gaps int
	for _, e := range em.events {
		if e.Kind() == touchpoint.KindAccountDMUGap {
			gaps++
		}
	}
	if gaps != 1 || !sink.rows[len(sink.rows)-1].View.Gap {
		t.Fatalf("%d dmu_gap events, last row gap %v; want one gap", gaps, sink.rows[len(sink.rows)-1].View.Gap)
	}
	// Next is the decision maker and the influencer leaving coverage.
	if n, err := a.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("second sweep: %d, %v", n, err)
	}
}
