package ops

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrDrain says that members of a [Group] had not returned when the drain
// timeout passed; they may still be running.
var ErrDrain = errors.New("ops: did not drain in time")

// errStopped is the cause of a group's context once Stop was called.
var errStopped = errors.New("ops: group stopped")

// Group runs the parts of a service side by side: start these, stop all
// when one fails, drain with a timeout. Every member runs under the
// group's context, which ends when the parent ends, [Group.Stop] is
// called, or a member fails. The zero Group is not usable; see [NewGroup].
type Group struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	err    error
}

// NewGroup returns an empty group whose context is derived from parent.
func NewGroup(parent context.Context) *Group {
	ctx, cancel := context.WithCancelCause(parent)
	return &Group{ctx: ctx, cancel: cancel}
}

// Context is the members' context: it ends when the group stops.
func (g *Group) Context() context.Context { return g.ctx }

// Go starts fn under the group's context. An error it returns (other than
// the context's own) fails the group: the first one, named, is what
// [Group.Wait] returns, and the other members are stopped. A nil return
// is a member that has done its work.
func (g *Group) Go(name string, fn func(ctx context.Context) error) { g.start(name, false, fn) }

// GoService is [Group.Go] for a member that must run until it is stopped:
// returning while the group still runs, even with nil, fails the group.
func (g *Group) GoService(name string, fn func(ctx context.Context) error) { g.start(name, true, fn) }

func (g *Group) start(name string, service bool, fn func(ctx context.Context) error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		err := fn(g.ctx)
		if err == nil && service && g.ctx.Err() == nil {
			err = errors.New("stopped on its own")
		}
		if err == nil || errors.Is(err, context.Canceled) && g.ctx.Err() != nil {
			return
		}
		g.fail(fmt.Errorf("%s: %w", name, err))
	}()
}

func (g *Group) fail(err error) {
	g.mu.Lock()
	if g.err == nil {
		g.err = err
	}
	g.mu.Unlock()
	g.cancel(err)
}

// Stop ends the group's context; the members return in their own time.
func (g *Group) Stop() { g.cancel(errStopped) }

// Err is the first failure so far, or nil.
func (g *Group) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// Wait waits until the group's context ends (the parent ended, Stop, or a
// failure), then up to drain (0: without limit) for every member to
// return. It returns the first failure, else an error wrapping [ErrDrain]
// when the drain timed out, else nil.
func (g *Group) Wait(drain time.Duration) error {
	<-g.ctx.Done()
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	var timeout <-chan time.Time
	if drain > 0 {
		t := time.NewTimer(drain)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-done:
	case <-timeout:
		if err := g.Err(); err != nil {
			return err
		}
		return fmt.Errorf("%w: members still running after %s", ErrDrain, drain)
	}
	return g.Err()
}
