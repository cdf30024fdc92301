package erasure_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klantreis/journey/pkg/erasure"
	"github.com/klantreis/journey/pkg/suppression"
)

// world is the fakes' shared state: what each store holds per customer and
// the order in which things happened.
type world struct {
	mu     sync.Mutex
	held   map[string]map[string]uint64 // store -> customer -> records
	log    []string
	supp   map[string]bool
	refill map[string]int // store -> times a record comes back after an erase
}

func newWorld(stores ...string) *world {
	w := &world{held: map[string]map[string]uint64{}, supp: map[string]bool{}, refill: map[string]int{}}
	for _, s := range stores {
		w.held[s] = map[string]uint64{}
	}
	return w
}

type store struct {
	w    *world
	name string
}

func (s store) Name() string { return s.name }

func (s store) Count(_ context.Context, customers []string) (uint64, error) {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	var n uint64
	for _, c := range customers {
		n += s.w.held[s.name][c]
	}
	return n, nil
}

func (s store) Erase(_ context.Context, customers []string) error {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	for _, c := range customers {
		if !s.w.supp[suppression.Hash(c)] {
			return fmt.Errorf("%s erased %s before the customer was suppressed", s.name, c)
		}
		delete(s.w.held[s.name], c)
	}
	s.w.log = append(s.w.log, "erase "+s.name)
	if s.w.refill[s.name] > 0 {
		s.w.refill[s.name]--
		s.w.held[s.name][customers[0]]++ // an event in flight lands after the erase
	}
	return nil
}

type suppressor struct{ w *world }

func (p suppressor) Suppress(_ context.Context, hashes []string, _ time.Time, _ string) error {
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	for _, h := range hashes {
		p.w.supp[h] = true
	}
	p.w.log = append(p.w.log, "suppress")
	return nil
}

var errCrash = errors.New("crash")

// journal keeps records as JSON (as the real one does) and fails the
// save numbered crashAt (1-based; 0 never): the process dies there.
type journal struct {
	mu      sync.Mutex
	recs    map[string][]byte
	saves   int
	crashAt int
}

func (j *journal) Load(_ context.Context, id string) (*erasure.Record, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	b, ok := j.recs[id]
	if !ok {
		return nil, erasure.ErrNotFound
	}
	var r erasure.Record
	return &r, json.Unmarshal(b, &r)
}

func (j *journal) Save(_ context.Context, r *erasure.Record) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.saves++
	if j.saves == j.crashAt {
		return errCrash
	}
	b, err := json.Marshal(r)
	j.recs[r.ID] = b
	return err
}

type receipts struct {
	mu   sync.Mutex
	sent []erasure.Record
}

func (p *receipts) PublishReceipt(_ context.Context, r *erasure.Record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent = append(p.sent, *r)
	return nil
}

func eraser(w *world, j *journal, rc *receipts, names ...string) *erasure.Eraser {
	e := &erasure.Eraser{Journal: j, Suppressor: suppressor{w}, Receipts: rc}
	for _, n := range names {
		e.Stores = append(e.Stores, store{w, n})
	}
	return e
}

var stores = []string{"stream A", "bucket B", "table C"}

// fill gives alice 3 records in every store, bob 1, and carol (not
// erased) 5.
func fill(w *world) {
	for _, s := range stores {
		w.held[s]["alice"], w.held[s]["bob"], w.held[s]["carol"] = 3, 1, 5
	}
}

func counts(r *erasure.Record) map[string]uint64 {
	out := map[string]uint64{}
	for _, s := range r.Steps {
		out[s.Store] = s.Count
	}
	return out
}

func TestEraseSuppressesFirstThenEmptiesEveryStore(t *testing.T) {
	t.Parallel()
	w := newWorld(stores...)
	fill(w)
	j, rc := &journal{recs: map[string][]byte{}}, &receipts{}
	rec, err := eraser(w, j, rc, stores...).Start(context.Background(), "e1", []string{"bob", "alice", "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Phase != erasure.PhaseComplete || rec.Customers != nil || rec.Attempts != 1 || rec.Completed.IsZero() {
		t.Fatalf("record %+v", rec)
	}
	if want := []string{suppression.Hash("alice"), suppression.Hash("bob")}; !slices.Equal(rec.Hashes, want) {
		t.Errorf("hashes %v, want %v", rec.Hashes, want)
	}
	for _, s := range stores {
		if got := counts(rec)[s]; got != 4 {
			t.Errorf("%s: receipt counts %d, want 4", s, got)
		}
		if w.held[s]["alice"]+w.held[s]["bob"] != 0 || w.held[s]["carol"] != 5 {
			t.Errorf("%s holds %v after the erasure", s, w.held[s])
		}
	}
	if w.log[0] != "suppress" {
		t.Errorf("first action %q, want suppress", w.log[0])
	}
	if len(rc.sent) != 1 || rc.sent[0].ID != "e1" {
		t.Errorf("receipts %+v", rc.sent)
	}
	// The journal keeps no id once complete.
	if b := string(j.recs["e1"]); strings.Contains(b, "alice") || strings.Contains(b, "bob") {
		t.Errorf("the completed journal entry names a customer: %s", b)
	}
	// Idempotent: the same id again changes nothing and publishes nothing.
	again, err := eraser(w, j, rc, stores...).Start(context.Background(), "e1", []string{"alice"})
	if err != nil || again.Attempts != 1 || len(rc.sent) != 1 {
		t.Errorf("second start: %v, attempts %d, receipts %d", err, again.Attempts, len(rc.sent))
	}
}

// A crash at every save in turn (the journal write fails, as when the
// process dies right there), then a run of a new eraser: the receipt has
// the same counts as an erasure that never crashed.
func TestEraseResumesAfterACrashAtEveryStep(t *testing.T) {
	t.Parallel()
	w := newWorld(stores...)
	fill(w)
	clean, err := eraser(w, &journal{recs: map[string][]byte{}}, &receipts{}, stores...).Start(context.Background(), "clean", []string{"alice", "bob"})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for crashAt := 1; ; crashAt++ {
		w := newWorld(stores...)
		fill(w)
		j, rc := &journal{recs: map[string][]byte{}, crashAt: crashAt}, &receipts{}
		_, err := eraser(w, j, rc, stores...).Start(context.Background(), "e", []string{"alice", "bob"})
		if err == nil {
			total = crashAt - 1
			break
		}
		if !errors.Is(err, errCrash) {
			t.Fatalf("crash at save %d: %v", crashAt, err)
		}
		rec, err := eraser(w, j, rc, stores...).Start(context.Background(), "e", []string{"alice", "bob"})
		if err != nil {
			t.Fatalf("crash at save %d, resume: %v", crashAt, err)
		}
		if rec.Phase != erasure.PhaseComplete || len(rc.sent) == 0 {
			t.Fatalf("crash at save %d: phase %s, %d receipts", crashAt, rec.Phase, len(rc.sent))
		}
		if !maps(counts(rec), counts(clean)) {
			t.Errorf("crash at save %d: counts %v, want %v", crashAt, counts(rec), counts(clean))
		}
		if rec.Attempts < 1 || rec.Attempts > 2 {
			t.Errorf("crash at save %d: attempts %d", crashAt, rec.Attempts)
		}
		for _, s := range stores {
			if w.held[s]["alice"]+w.held[s]["bob"] != 0 {
				t.Errorf("crash at save %d: %s still holds %v", crashAt, s, w.held[s])
			}
		}
	}
	if total < 2+2*len(stores) {
		t.Fatalf("an erasure of %d stores saved only %d times: the crash points cover too little", len(stores), total)
	}
	t.Logf("crashed at each of %d journal saves; every resume gave the clean receipt %v", total, counts(clean))
}

func maps(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestVerifyErasesWhatArrivedLateAndGivesUpOnAStoreThatRefills(t *testing.T) {
	t.Parallel()
	w := newWorld(stores...)
	fill(w)
	w.refill["table C"] = 1
	rec, err := eraser(w, &journal{recs: map[string][]byte{}}, &receipts{}, stores...).Start(context.Background(), "e", []string{"alice"})
	if err != nil {
		t.Fatal(err)
	}
	if got := counts(rec)["table C"]; got != 4 {
		t.Errorf("table C counted %d, want 3 + 1 late", got)
	}
	w = newWorld(stores...)
	fill(w)
	w.refill["table C"] = 100
	_, err = eraser(w, &journal{recs: map[string][]byte{}}, &receipts{}, stores...).Start(context.Background(), "e", []string{"alice"})
	if !errors.Is(err, erasure.ErrLeft) || !strings.Contains(err.Error(), "table C") {
		t.Errorf("a store that always refills: %v, want ErrLeft naming table C", err)
	}
}

func TestStoreListChangesBetweenRuns(t *testing.T) {
	t.Parallel()
	w := newWorld(append(stores, "table C__rebuild")...)
	fill(w)
	w.held["table C__rebuild"]["alice"] = 2
	j, rc := &journal{recs: map[string][]byte{}, crashAt: 2}, &receipts{}
	if _, err := eraser(w, j, rc, stores...).Start(context.Background(), "e", []string{"alice"}); !errors.Is(err, errCrash) {
		t.Fatal(err)
	}
	// The resumed run sees a shadow table that appeared, and no longer
	// "table C" (dropped meanwhile).
	rec, err := eraser(w, j, rc, "stream A", "bucket B", "table C__rebuild").Start(context.Background(), "e", []string{"alice"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]erasure.Step{}
	for _, s := range rec.Steps {
		got[s.Store] = s
	}
	if s := got["table C__rebuild"]; !s.Erased || s.Count != 2 {
		t.Errorf("new store: %+v", s)
	}
	if s := got["table C"]; !s.Erased || !s.Gone {
		t.Errorf("dropped store: %+v", s)
	}
}

func TestStartRefusesABadRequest(t *testing.T) {
	t.Parallel()
	e := eraser(newWorld(), &journal{recs: map[string][]byte{}}, &receipts{})
	for _, tc := range []struct {
		id        string
		customers []string
	}{{"", []string{"a"}}, {"e", nil}, {"e", []string{}}, {"e", []string{"a", ""}}} {
		if _, err := e.Start(context.Background(), tc.id, tc.customers); !errors.Is(err, erasure.ErrInvalid) {
			t.Errorf("Start(%q, %v): %v, want ErrInvalid", tc.id, tc.customers, err)
		}
	}
}

type inflowStore struct{ store }

func (inflowStore) Inflow() bool { return true }

// Events that keep arriving in a stream producers write to directly do not
// fail the erasure: they are erased and counted.
func TestInflowStoreArrivalsAreErasedWithoutFailing(t *testing.T) {
	t.Parallel()
	w := newWorld(stores...)
	fill(w)
	w.refill["stream A"] = 100
	e := eraser(w, &journal{recs: map[string][]byte{}}, &receipts{}, "bucket B", "table C")
	e.Stores = append([]erasure.Store{inflowStore{store{w, "stream A"}}}, e.Stores...)
	rec, err := e.Start(context.Background(), "e", []string{"alice"})
	if err != nil {
		t.Fatal(err)
	}
	if got := counts(rec)["stream A"]; got <= 3 {
		t.Errorf("stream A counted %d, want 3 and the arrivals", got)
	}
}
