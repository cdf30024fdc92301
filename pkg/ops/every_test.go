package ops

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestEvery(t *testing.T) {
	for _, tc := range []struct {
		name  string
		run   func(context.Context, time.Duration, func(context.Context))
		first bool // a call before the first interval has passed
	}{
		{"Every", Every, false},
		{"EveryFromNow", EveryFromNow, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			var calls atomic.Int32
			firstAt := make(chan time.Duration, 1)
			start := time.Now()
			done := make(chan struct{})
			go func() {
				defer close(done)
				tc.run(ctx, 50*time.Millisecond, func(context.Context) {
					if calls.Add(1) == 1 {
						firstAt <- time.Since(start)
					}
					if calls.Load() == 3 {
						cancel()
					}
				})
			}()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("did not return after its context ended")
			}
			if n := calls.Load(); n != 3 {
				t.Fatalf("%d calls after cancelling in the third, want 3: a call ran after ctx ended", n)
			}
			at := <-firstAt
			if early := at < 40*time.Millisecond; early != tc.first {
				t.Fatalf("first call after %v; want a call at once: %v", at, tc.first)
			}
		})
	}
}

func TestEveryEndedContextCallsNothing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := 0
	EveryFromNow(ctx, time.Millisecond, func(context.Context) { calls++ })
	Every(ctx, time.Millisecond, func(context.Context) { calls++ })
	if calls != 0 {
		t.Fatalf("%d calls on an ended context, want 0", calls)
	}
}
