// Package storetest is the conformance suite of [projection.Store]: every
// implementation (the in-memory one of the projection tests, the
// projector's JetStream key-value store) runs the same tests, so that the
// projector can rely on one contract whichever store it has.
//
// A store that is also a [projection.BatchGetter] is held to that
// contract too.
package storetest

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
)

// Run runs the suite. open returns an empty store for one subtest; it may
// register its cleanup with t.
func Run(t *testing.T, open func(t *testing.T) projection.Store) {
	tests := []struct {
		name string
		test func(t *testing.T, s projection.Store)
	}{
		{"GetMissingIsNotFound", getMissing},
		{"CreateThenGet", createThenGet},
		{"CreateOfAnExistingCustomerConflicts", createExisting},
		{"UpdateAtTheStoredRevision", update},
		{"StaleRevisionConflictsAndChangesNothing", staleRevision},
		{"BatchReturnsRevisionsInOrder", batch},
		{"KeysWithSubjectCharacters", oddKeys},
		{"OneWinnerAmongConcurrentWriters", concurrent},
	}
	if _, ok := open(t).(projection.BatchGetter); ok {
		tests = append(tests, struct {
			name string
			test func(t *testing.T, s projection.Store)
		}{"GetManyAgreesWithGet", getMany})
	} else {
		t.Log("not a BatchGetter: GetMany is not tested (the projector reads such a store one customer at a time)")
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, open(t)) })
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// record is a customer's record with some content, distinct per n.
func record(id string, n uint64) *projection.Record {
	st := journey.NewState(id)
	st.AccountID = fmt.Sprint("acct-", n)
	st.LastTouch = time.Date(2026, 11, 1, 12, 0, int(n%60), 0, time.UTC)
	return &projection.Record{State: st, LastSeq: n, Bump: uint32(n % 3)}
}

func put(t *testing.T, s projection.Store, id string, rec *projection.Record, rev uint64) (uint64, error) {
	t.Helper()
	revs, err := s.Put(ctx(t), []projection.Put{{CustomerID: id, Record: rec, Rev: rev}})
	if err != nil {
		return 0, err
	}
	if len(revs) != 1 {
		t.Fatalf("Put of one record returned %d revisions", len(revs))
	}
	return revs[0], nil
}

// mustGet reads id and checks it holds want at revision rev.
func mustGet(t *testing.T, s projection.Store, id string, want *projection.Record, rev uint64) {
	t.Helper()
	got, gotRev, err := s.Get(ctx(t), id)
	if err != nil {
		t.Fatalf("Get %q: %v", id, err)
	}
	if gotRev != rev || !same(got, want) {
		t.Fatalf("Get %q = revision %d %s, want revision %d %s", id, gotRev, js(got), rev, js(want))
	}
}

func same(a, b *projection.Record) bool { return js(a) == js(b) }

func js(r *projection.Record) string {
	b, err := json.Marshal(r)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func getMissing(t *testing.T, s projection.Store) {
	if _, _, err := s.Get(ctx(t), "cust/none"); !errors.Is(err, projection.ErrNotFound) {
		t.Fatalf("Get of an absent customer = %v, want ErrNotFound", err)
	}
}

func createThenGet(t *testing.T, s projection.Store) {
	rec := record("cust/1", 7)
	rev, err := put(t, s, "cust/1", rec, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rev == 0 {
		t.Fatal("Put returned revision 0, which means \"absent\"")
	}
	mustGet(t, s, "cust/1", rec, rev)
}

func createExisting(t *testing.T, s projection.Store) {
	first := record("cust/1", 1)
	rev, err := put(t, s, "cust/1", first, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := put(t, s, "cust/1", record("cust/1", 2), 0); !errors.Is(err, projection.ErrConflict) {
		t.Fatalf("second create = %v, want ErrConflict", err)
	}
	mustGet(t, s, "cust/1", first, rev)
}

func update(t *testing.T, s projection.Store) {
	r1, err := put(t, s, "cust/1", record("cust/1", 1), 0)
	if err != nil {
		t.Fatal(err)
	}
	next := record("cust/1", 2)
	r2, err := put(t, s, "cust/1", next, r1)
	if err != nil {
		t.Fatal(err)
	}
	if r2 <= r1 {
		t.Fatalf("revision after an update %d, not above %d", r2, r1)
	}
	mustGet(t, s, "cust/1", next, r2)
}

func staleRevision(t *testing.T, s projection.Store) {
	r1, err := put(t, s, "cust/1", record("cust/1", 1), 0)
	if err != nil {
		t.Fatal(err)
	}
	cur := record("cust/1", 2)
	r2, err := put(t, s, "cust/1", cur, r1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := put(t, s, "cust/1", record("cust/1", 3), r1); !errors.Is(err, projection.ErrConflict) {
		t.Fatalf("Put at the replaced revision = %v, want ErrConflict", err)
	}
	if _, err := put(t, s, "cust/2", record("cust/2", 3), r2+1000); !errors.Is(err, projection.ErrConflict) {
		t.Fatalf("Put of an absent customer at a revision = %v, want ErrConflict", err)
	}
	mustGet(t, s, "cust/1", cur, r2)
	if _, _, err := s.Get(ctx(t), "cust/2"); !errors.Is(err, projection.ErrNotFound) {
		t.Fatalf("a refused create was stored: Get = %v", err)
	}
}

func batch(t *testing.T, s projection.Store) {
	var puts []projection.Put
	for i := range 5 {
		id := fmt.Sprint("cust/", i)
		puts = append(puts, projection.Put{CustomerID: id, Record: record(id, uint64(10+i))})
	}
	revs, err := s.Put(ctx(t), puts)
	if err != nil {
		t.Fatal(err)
	}
	if len(revs) != len(puts) {
		t.Fatalf("%d revisions for %d puts", len(revs), len(puts))
	}
	seen := map[uint64]bool{}
	for i, p := range puts {
		if revs[i] == 0 || seen[revs[i]] {
			t.Fatalf("revisions %v: zero or repeated", revs)
		}
		seen[revs[i]] = true
		mustGet(t, s, p.CustomerID, p.Record, revs[i])
	}
}

// Customer ids are free text: a store that maps them to keys or subjects
// must keep them apart and give each back.
func oddKeys(t *testing.T, s projection.Store) {
	ids := []string{"cust/1", "cust.1", "cust 1", "cust*1", "cust>1", "ünïcødé", "a.b.c", "-", "%2F", "cust_1"}
	revs := map[string]uint64{}
	for i, id := range ids {
		rev, err := put(t, s, id, record(id, uint64(i+1)), 0)
		if err != nil {
			t.Fatalf("Put %q: %v", id, err)
		}
		revs[id] = rev
	}
	for i, id := range ids {
		mustGet(t, s, id, record(id, uint64(i+1)), revs[id])
	}
}

// Compare-and-set is what keeps two projectors (an old one not yet gone,
// a new one) from overwriting each other: of writers racing from one
// revision, exactly one wins.
func concurrent(t *testing.T, s projection.Store) {
	r1, err := put(t, s, "cust/1", record("cust/1", 1), 0)
	if err != nil {
		t.Fatal(err)
	}
	const writers = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, lost := 0, 0
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Put(ctx(t), []projection.Put{{CustomerID: "cust/1", Record: record("cust/1", uint64(100+w)), Rev: r1}})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, projection.ErrConflict):
				lost++
			default:
				t.Errorf("racing Put: %v", err)
			}
		}()
	}
	wg.Wait()
	if won != 1 || lost != writers-1 {
		t.Fatalf("%d writers won and %d lost the race, want 1 and %d", won, lost, writers-1)
	}
}

func getMany(t *testing.T, s projection.Store) {
	bg := s.(projection.BatchGetter)
	revs := map[string]uint64{}
	recs := map[string]*projection.Record{}
	for i := range 4 {
		id := fmt.Sprint("cust/", i)
		recs[id] = record(id, uint64(i+1))
		rev, err := put(t, s, id, recs[id], 0)
		if err != nil {
			t.Fatal(err)
		}
		revs[id] = rev
	}
	ids := []string{"cust/0", "cust/1", "cust/none", "cust/2", "cust/3", "cust/also-none"}
	found, missing, err := bg.GetMany(ctx(t), ids)
	if err != nil {
		t.Fatal(err)
	}
	unanswered := map[string]bool{}
	for _, id := range missing {
		unanswered[id] = true
	}
	for _, id := range ids {
		g, ok := found[id]
		switch want, exists := revs[id]; {
		case unanswered[id]:
			// A truncated reply: the caller reads it with Get.
		case exists && (!ok || g.Rev != want || !same(g.Record, recs[id])):
			t.Fatalf("GetMany %q = %+v (found %v), want revision %d", id, g, ok, want)
		case !exists && ok:
			t.Fatalf("GetMany found %q, which does not exist", id)
		}
	}
}
