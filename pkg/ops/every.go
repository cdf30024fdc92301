package ops

import (
	"context"
	"time"
)

// Every calls fn each time d has passed, until ctx ends; the first call is
// d after Every starts (EveryFromNow makes one at once). fn runs on the
// caller's goroutine, so a slow fn delays the next call instead of
// overlapping it: ticks that fall due meanwhile are dropped, as
// time.Ticker drops them. Every returns once ctx has ended and fn is not
// running; it never interrupts fn, which gets ctx to watch itself.
func Every(ctx context.Context, d time.Duration, fn func(ctx context.Context)) {
	every(ctx, d, false, fn)
}

// EveryFromNow is Every with a first call at once, for readings that
// should not wait one interval for their first value.
func EveryFromNow(ctx context.Context, d time.Duration, fn func(ctx context.Context)) {
	every(ctx, d, true, fn)
}

func every(ctx context.Context, d time.Duration, now bool, fn func(ctx context.Context)) {
	t := time.NewTicker(d)
	defer t.Stop()
	if now && ctx.Err() == nil {
		fn(ctx)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if ctx.Err() != nil {
			return
		}
		fn(ctx)
	}
}
