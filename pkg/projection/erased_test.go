package projection_test

import (
	"context"
	"testing"
	"time"

	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/projection"
	"github.com/klantreis/journey/pkg/touchpoint"
)

// An erased customer whose state is still in memory is not advanced by a
// sweep: no derived event, no row, no state written, and not scheduled
// again; the others are swept as usual.
func TestSweepForgetsErasedCustomers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := newMemStore()
	rb, err := journey.New(journey.DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: store, sink: &memSink{}, emit: &memEmitter{}, index: &memIndex{at: map[string]time.Time{}}, now: base.Add(10 * journey.Day)}
	erased := map[string]bool{}
	f.p, err = projection.New(projection.Options{Rules: rb, Store: f.store, Sink: f.sink, Emitter: f.emit, Index: f.index,
		Now: func() time.Time { return f.now }, Erased: func(id string) bool { return erased[id] }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.p.Process(ctx, []projection.Msg{msg(1, "a", touchpoint.KindOrder, 0, placed("o1")), msg(2, "b", touchpoint.KindOrder, 0, placed("o2"))}); err != nil {
		t.Fatal(err)
	}
	erased["a"] = true
	f.now = base.Add(400 * journey.Day)
	before := len(f.emit.events)
	n, _, err := f.p.Sweep(ctx)
	if err != nil || n != 1 {
		t.Fatalf("sweep: %d %v, want only b", n, err)
	}
	for _, ev := range f.emit.events[before:] {
		if ev.Subject == "a" {
			t.Errorf("an erased customer got a derived event: %+v", ev)
		}
	}
	if rec, _, _ := f.store.Get(ctx, "a"); rec != nil && rec.State.Stage() == journey.StageExCustomer {
		t.Error("an erased customer's state was advanced")
	}
	if f.p.Scheduled() != 0 {
		t.Errorf("still scheduled: %d", f.p.Scheduled())
	}
}
