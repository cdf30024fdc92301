package simulator_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/services/simulator"
)

// memSink keeps what it is given: the pacing under test is the
// simulator's, the sink only records when each event left.
type memSink struct {
	mu  sync.Mutex
	evs []touchpoint.Event
	// at is when each event arrived, on the monotonic clock (event times
	// are wall-clock stamps, which a VM's clock sync may step).
	at []time.Time
}

func (m *memSink) Publish(_ context.Context, e touchpoint.Event) error {
	m.mu.Lock()
	m.evs = append(m.evs, e)
	m.at = append(m.at, time.Now())
	m.mu.Unlock()
	return nil
}

func (m *memSink) Flush(context.Context) error { return nil }

// TestCompression: with time compression, no event leaves before its
// simulated time is due (simulated offset / compression), live events carry
// the wall clock, and the run keeps up with the simulated clock.
func TestCompression(t *testing.T) {
	const compression = 30 * 24 * 3600 // a simulated month per second
	s := simulator.Settings{Customers: 300, Seed: 21, B2BShare: 0.3, Source: "simulator",
		Compression: compression, FlushInterval: 50 * time.Millisecond}
	sink := &memSink{}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var t0 time.Time
	now := func() time.Time {
		n := time.Now()
		if t0.IsZero() {
			t0 = n
		}
		return n
	}
	n, err := simulator.Pace(ctx, s, now, sink, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 || int(n) != len(sink.evs) {
		t.Fatalf("Pace reported %d events, sink got %d", n, len(sink.evs))
	}
	// The same generator, replayed, gives each event's simulated time.
	g := simulator.NewGenerator(simulator.Options{Seed: s.Seed, Start: t0, Customers: s.Customers, B2BShare: s.B2BShare, Source: s.Source})
	sim0 := g.Peek()
	for i, e := range sink.evs {
		want := g.Next()
		if want.ID != e.ID {
			t.Fatalf("event %d is %s, the generator's is %s", i, e.ID, want.ID)
		}
		due := time.Duration(float64(want.Time.Sub(sim0)) / compression)
		if left := sink.at[i].Sub(t0); left < due {
			t.Fatalf("event %d left %s after the start, before it was due at %s", i, left, due)
		}
		if d := e.Time.Sub(sink.at[i]); d > time.Second || d < -time.Second {
			t.Fatalf("event %d is stamped %s, %s off the wall clock when it left", i, e.Time, d)
		}
	}
	// Keeping up: the events due in the first quarter second all left in
	// the 1.5 s run (the slack is for a loaded machine).
	g = simulator.NewGenerator(simulator.Options{Seed: s.Seed, Start: t0, Customers: s.Customers, B2BShare: s.B2BShare, Source: s.Source})
	dueEarly := 0
	for g.Peek().Sub(sim0) < compression*time.Second/4 {
		g.Next()
		dueEarly++
	}
	if len(sink.evs) < dueEarly {
		t.Fatalf("%d events left, but %d were due in the first quarter second", len(sink.evs), dueEarly)
	}
}
