package projection_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/projection"
	"github.com/klantreis/journey/pkg/touchpoint"
)

// limitStore is a memStore that encodes records and refuses those over
// limit bytes, the way a key-value bucket refuses a value over the
// broker's message size.
type limitStore struct {
	*memStore
	limit   int
	encoded int // Puts that carried their encoded bytes
}

func (s *limitStore) Encode(rec *projection.Record) ([]byte, error) {
	b, err := projection.EncodeRecord(rec)
	if err != nil {
		return nil, err
	}
	if len(b) > s.limit {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", projection.ErrTooLarge, len(b), s.limit)
	}
	return b, nil
}

func (s *limitStore) Put(ctx context.Context, puts []projection.Put) ([]uint64, error) {
	for _, p := range puts {
		if p.Data != nil {
			s.encoded++
		}
	}
	return s.memStore.Put(ctx, puts)
}

func TestProcessRejectsRecordTheStoreCannotHold(t *testing.T) {
	t.Parallel()
	rb, err := journey.NewRulebook(journey.DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	store := &limitStore{memStore: newMemStore(), limit: 2000}
	f := &fixture{store: store.memStore, sink: &memSink{}, emit: &memEmitter{}, index: &memIndex{at: map[string]time.Time{}}, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f.p, err = projection.New(projection.Options{Rules: rb, Store: store, Sink: f.sink, Emitter: f.emit, Index: f.index,
		Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := f.p.Process(ctx, []projection.Msg{msg(1, "big", touchpoint.KindVisit, 0, nil), msg(2, "small", touchpoint.KindVisit, 0, nil)}); err != nil {
		t.Fatal(err)
	}
	stored, _, err := store.Get(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}

	// One batch gives "big" more orders than its record can hold; "small"
	// in the same batch must not wait for it.
	var batch []projection.Msg
	seq := uint64(10)
	for i := range 40 {
		batch = append(batch, msg(seq, "big", touchpoint.KindOrder, 1+i, placed(fmt.Sprint("o", i))))
		seq++
	}
	batch = append(batch, msg(seq, "small", touchpoint.KindOrder, 1, placed("s1")))
	seq++
	writes, rows, derived := f.sink.writes, len(f.sink.updates), len(f.emit.events)
	rejected, err := f.p.Process(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(rejected) != 1 || rejected[0].CustomerID != "big" || len(rejected[0].Msgs) != 40 || !errors.Is(rejected[0].Err, projection.ErrTooLarge) {
		t.Fatalf("rejected %+v, want big with its 40 events and ErrTooLarge", rejected)
	}
	small, _, err := store.Get(ctx, "small")
	if err != nil || small.State.Stage() != journey.StageNewCustomer {
		t.Fatalf("small: %v, %+v", err, small)
	}
	after, _, err := store.Get(ctx, "big")
	if err != nil || after.LastSeq != stored.LastSeq || len(after.State.Orders) != 0 {
		t.Fatalf("big's stored record changed: %v, %+v", err, after)
	}
	if f.sink.writes != writes+1 {
		t.Fatal("the batch's rows were not written")
	}
	for _, u := range f.sink.updates[rows:] {
		if u.CustomerID == "big" {
			t.Fatal("rows of the rejected customer reached the warehouse")
		}
	}
	if len(f.emit.events) == derived {
		t.Fatal("small's derived events are missing")
	}
	for _, e := range f.emit.events[derived:] {
		if e.Subject == "big" {
			t.Fatalf("a derived event of the rejected customer was emitted: %s", e.Type)
		}
	}
	if store.encoded == 0 {
		t.Fatal("Put did not receive the encoded records")
	}

	// The rejected events changed big's record only in memory: its next
	// event starts from what the store holds, and fits.
	if rejected, err := f.p.Process(ctx, []projection.Msg{msg(seq, "big", touchpoint.KindOrder, 50, placed("late"))}); err != nil || len(rejected) != 0 {
		t.Fatalf("next event of big: %v, rejected %+v", err, rejected)
	}
	after, _, err = store.Get(ctx, "big")
	if err != nil || len(after.State.Orders) != 1 || after.State.Stage() != journey.StageNewCustomer {
		t.Fatalf("big after its next event: %v, %+v", err, after.State)
	}
}
