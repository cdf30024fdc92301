package ops

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestGroupStopsAllWhenOneFails(t *testing.T) {
	t.Parallel()
	g := NewGroup(context.Background())
	stopped := make(chan string, 2)
	for _, name := range []string{"a", "b"} {
		g.GoService(name, func(ctx context.Context) error {
			<-ctx.Done()
			stopped <- name
			return ctx.Err() // the context's own error is no failure
		})
	}
	boom := errors.New("boom")
	g.Go("broken", func(context.Context) error { return boom })
	err := g.Wait(5 * time.Second)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("Wait = %v, want the failure, named", err)
	}
	if len(stopped) != 2 {
		t.Fatalf("%d of 2 members stopped", len(stopped))
	}
}

func TestGroupOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		member  func(ctx context.Context) error
		service bool
		stop    bool // Stop the group (else the member ends it)
		want    string
	}{
		{"done work is fine", func(context.Context) error { return nil }, false, true, ""},
		{"a service returning on its own fails", func(context.Context) error { return nil }, true, false, "svc: stopped on its own"},
		{"a service stopped is fine", func(ctx context.Context) error { <-ctx.Done(); return nil }, true, true, ""},
		{"an error after the stop still counts", func(ctx context.Context) error { <-ctx.Done(); return errors.New("flush failed") }, true, true, "svc: flush failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := NewGroup(context.Background())
			if tc.service {
				g.GoService("svc", tc.member)
			} else {
				g.Go("svc", tc.member)
			}
			if tc.stop {
				g.Stop()
			}
			err := g.Wait(5 * time.Second)
			if got := errString(err); got != tc.want {
				t.Fatalf("Wait = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestGroupDrainTimeout(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	g := NewGroup(ctx)
	release := make(chan struct{})
	defer close(release)
	g.Go("slow", func(context.Context) error { <-release; return nil })
	cancel()
	t0 := time.Now()
	err := g.Wait(50 * time.Millisecond)
	if !errors.Is(err, ErrDrain) {
		t.Fatalf("Wait = %v, want ErrDrain", err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Fatalf("Wait took %s past a 50ms drain", d)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
