package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBackoffSchedule(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		initial, max time.Duration
		want         []time.Duration // the upper bound of each draw
	}{
		{"defaults", 0, 0, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}},
		{"capped", 100 * time.Millisecond, 300 * time.Millisecond, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond}},
		{"initial above max", time.Second, 250 * time.Millisecond, []time.Duration{250 * time.Millisecond, 250 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := New(tt.initial, tt.max)
			for i, hi := range tt.want {
				got := b.Next()
				if got < hi/2 || got > hi {
					t.Fatalf("wait %d = %s, want within [%s, %s]", i, got, hi/2, hi)
				}
			}
			b.Reset()
			if got, hi := b.Next(), tt.want[0]; got < hi/2 || got > hi {
				t.Fatalf("after Reset: %s, want within [%s, %s]", got, hi/2, hi)
			}
		})
	}
}

func TestBackoffJitters(t *testing.T) {
	t.Parallel()
	seen := map[time.Duration]bool{}
	for range 50 {
		seen[New(time.Second, time.Second).Next()] = true
	}
	if len(seen) < 2 {
		t.Fatalf("50 first waits of 1s took %d distinct values; want jitter", len(seen))
	}
}

var errPerm = errors.New("permanent")

func TestDo(t *testing.T) {
	t.Parallel()
	transient := errors.New("transient")
	tests := []struct {
		name      string
		errs      []error // what successive attempts return; then nil
		permanent func(error) bool
		want      error
		attempts  int
		retries   int
	}{
		{"first try", nil, nil, nil, 1, 0},
		{"transient then ok", []error{transient, transient}, nil, nil, 3, 2},
		{"permanent stops", []error{transient, errPerm, transient}, func(err error) bool { return errors.Is(err, errPerm) }, errPerm, 2, 1},
		{"no classifier retries all", []error{errPerm}, nil, nil, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			attempts, retries := 0, 0
			p := Policy{Initial: time.Millisecond, Max: 2 * time.Millisecond, Permanent: tt.permanent,
				OnRetry: func(int, error, time.Duration) { retries++ }}
			err := Do(context.Background(), p, func(context.Context) error {
				attempts++
				if attempts <= len(tt.errs) {
					return tt.errs[attempts-1]
				}
				return nil
			})
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Do = %v, want %v", err, tt.want)
			}
			if attempts != tt.attempts || retries != tt.retries {
				t.Fatalf("attempts %d retries %d, want %d and %d", attempts, retries, tt.attempts, tt.retries)
			}
		})
	}
}

func TestDoHonoursContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	attempts := 0
	done := make(chan error, 1)
	go func() {
		done <- Do(ctx, Policy{Initial: time.Hour, Max: time.Hour}, func(context.Context) error {
			attempts++
			return errors.New("down")
		})
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Do = %v, want context.Canceled", err)
		}
		if attempts != 1 {
			t.Fatalf("attempts = %d, want 1 (the hour-long wait is cut short)", attempts)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Do did not return when its context was cancelled during a wait")
	}
}

func TestDoAttemptTimeout(t *testing.T) {
	t.Parallel()
	attempts := 0
	err := Do(context.Background(), Policy{Initial: time.Millisecond, AttemptTimeout: 10 * time.Millisecond}, func(ctx context.Context) error {
		attempts++
		if attempts == 1 {
			<-ctx.Done() // a hung attempt is cut off by its own deadline
			return ctx.Err()
		}
		return nil
	})
	if err != nil || attempts != 2 {
		t.Fatalf("Do = %v after %d attempts, want nil after 2", err, attempts)
	}
}
