package ops

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// Both stop calling once the context ends, even from inside a call.
func TestEveryStopsWithItsContext(t *testing.T) {
	for name, run := range map[string]func(context.Context, time.Duration, func(context.Context)){
		"Every": Every, "EveryFromNow": EveryFromNow,
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			var calls atomic.Int32
			done := make(chan struct{})
			go func() {
				defer close(done)
				run(ctx, 10*time.Millisecond, func(context.Context) {
					if calls.Add(1) == 3 {
						cancel()
					}
				})
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("did not return after its context ended")
			}
			if n := calls.Load(); n != 3 {
				t.Fatalf("%d calls after cancelling in the third, want 3: a call ran after ctx ended", n)
			}
		})
	}
}

// Only EveryFromNow calls before the first interval has passed. The
// interval is an hour, so a slow machine cannot blur the two.
func TestEveryFromNowCallsAtOnce(t *testing.T) {
	for name, tc := range map[string]struct {
		run  func(context.Context, time.Duration, func(context.Context))
		want bool
	}{
		"Every": {Every, false}, "EveryFromNow": {EveryFromNow, true},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			called := make(chan struct{}, 1)
			go tc.run(ctx, time.Hour, func(context.Context) { called <- struct{}{} })
			wait := 200 * time.Millisecond
			if tc.want {
				wait = 10 * time.Second
			}
			select {
			case <-called:
				if !tc.want {
					t.Fatal("called before the first interval passed")
				}
			case <-time.After(wait):
				if tc.want {
					t.Fatal("no call at once")
				}
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
