// Package retry is journey's one way to try an operation again: exponential
// backoff with jitter that honours the context and stops early on errors a
// classifier calls permanent (for example [warehouse.Classify]).
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Default bounds of a [Backoff] whose fields are zero.
const (
	DefaultInitial = 100 * time.Millisecond
	DefaultMax     = 10 * time.Second
)

// Backoff yields the waits between attempts: Initial, then doubling up to
// Max, each drawn uniformly from [d/2, d] so that several processes that
// failed together do not retry in step. The zero value starts at
// [DefaultInitial] and caps at [DefaultMax]. A Backoff is not safe for
// concurrent use.
type Backoff struct {
	Initial, Max time.Duration
	d            time.Duration
}

// New returns a Backoff from initial to max; zero values take the defaults.
func New(initial, max time.Duration) *Backoff { return &Backoff{Initial: initial, Max: max} }

// Next returns the wait before the next attempt and advances the schedule.
func (b *Backoff) Next() time.Duration {
	initial, max := b.Initial, b.Max
	if initial <= 0 {
		initial = DefaultInitial
	}
	if max <= 0 {
		max = DefaultMax
	}
	if b.d == 0 {
		b.d = min(initial, max)
	} else {
		b.d = min(2*b.d, max)
	}
	return b.d/2 + rand.N(b.d/2+1)
}

// Reset starts the schedule again at Initial (after a success).
func (b *Backoff) Reset() { b.d = 0 }

// Wait sleeps for [Backoff.Next]; it returns false, early, when ctx ends.
func (b *Backoff) Wait(ctx context.Context) bool { return Sleep(ctx, b.Next()) }

// Sleep waits d or until ctx ends; it reports whether the whole d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Policy says how [Do] retries. The zero value retries every error from
// 100ms up to 10s apart until the context ends.
type Policy struct {
	// Initial and Max bound the backoff (defaults 100ms and 10s).
	Initial, Max time.Duration
	// AttemptTimeout, when > 0, bounds each attempt with its own deadline.
	AttemptTimeout time.Duration
	// Permanent, when set, classifies errors: one it returns true for ends
	// Do at once with that error. Nil means every error is transient.
	Permanent func(error) bool
	// OnRetry, when set, is called after each failed transient attempt
	// (counted from 1) with the wait before the next one: for logs,
	// metrics and in-progress acks.
	OnRetry func(attempt int, err error, wait time.Duration)
}

// Do runs fn until it returns nil, returns an error Permanent accepts, or
// ctx ends. It returns nil, the permanent error, or ctx's error (when ctx
// ends the last attempt's error is dropped: the caller is shutting down).
func Do(ctx context.Context, p Policy, fn func(context.Context) error) error {
	b := New(p.Initial, p.Max)
	for attempt := 1; ; attempt++ {
		err := attemptOnce(ctx, p.AttemptTimeout, fn)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if p.Permanent != nil && p.Permanent(err) {
			return err
		}
		d := b.Next()
		if p.OnRetry != nil {
			p.OnRetry(attempt, err, d)
		}
		if !Sleep(ctx, d) {
			return ctx.Err()
		}
	}
}

func attemptOnce(ctx context.Context, timeout time.Duration, fn func(context.Context) error) error {
	if timeout <= 0 {
		return fn(ctx)
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return fn(actx)
}
