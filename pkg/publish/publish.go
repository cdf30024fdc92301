// Package publish is the Go client product systems use to emit touchpoints
// onto journey's JetStream stream.
//
// Build events with [touchpoint.New] and the typed payloads
// (touchpoint.Visit, Quote, Order, Complaint, Survey), then [Publisher.Publish]
// (waits for the stream's ack) or [Publisher.PublishAsync] (returns a handle).
// Every event is validated first, so a bad one is refused with an error that
// names the field and nothing is sent. Events go out as CloudEvents in binary
// mode with a deduplication id derived from (source, id); transient failures
// (no responders, ack timeouts, disconnects) are retried with the same id,
// so a retry never stores an event twice within the stream's duplicate
// window. See docs/publisher.md.
package publish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
)

// Errors for errors.Is. Validation errors are the touchpoint package's
// (touchpoint.ErrInvalid, touchpoint.ErrUnknownType with a
// *touchpoint.ValidationError that names the field and rule).
var (
	// ErrClosed: the publisher was closed; the event was not sent.
	ErrClosed = errors.New("publish: publisher closed")
	// ErrNotStored: the stream did not acknowledge the event after every
	// attempt, or refused it. It wraps the last cause.
	ErrNotStored = errors.New("publish: event not stored")
	// errAckTimeout is one attempt's ack not arriving within AckTimeout.
	errAckTimeout = errors.New("publish: no ack within the ack timeout")
)

// Result is the stream's acknowledgement of one event.
type Result struct {
	// Stream and Seq locate the stored event.
	Stream string
	Seq    uint64
	// Duplicate: the stream already held an event with this (source, id)
	// within its duplicate window, so it kept the first and stored nothing.
	// A retry after a lost ack reports it too.
	Duplicate bool
	// Attempts is how many times the event was sent (1 without retries).
	Attempts int
}

// JetStream is the part of jetstream.JetStream the publisher uses.
type JetStream interface {
	PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
}

// Publisher publishes touchpoints asynchronously with bounded in-flight
// events, retries and per-event results. It is safe for concurrent use.
// Close it to drain.
type Publisher struct {
	js    JetStream
	cfg   config
	slots chan struct{} // one token per in-flight event: the MaxPending bound
	queue chan *Pending // sent events awaiting their ack, in send order
	stop  chan struct{}
	done  chan struct{} // collector exited

	mu      sync.Mutex
	closed  bool
	pending map[*Pending]struct{}
}

// Pending is one event on its way to the stream.
type Pending struct {
	msg      *nats.Msg
	fut      jetstream.PubAckFuture
	deadline time.Time
	attempts int

	done chan struct{}
	res  Result
	err  error
}

// Done is closed when the result is known.
func (p *Pending) Done() <-chan struct{} { return p.done }

// Wait returns the event's result once known, or ctx's error. Cancelling
// ctx stops the wait, not the publish: the event may still be stored.
func (p *Pending) Wait(ctx context.Context) (Result, error) {
	select {
	case <-p.done:
		return p.res, p.err
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// New returns a publisher on js (from stream.Connect or jetstream.New).
// Option errors wrap [ErrOption]. The stream must exist (stream.Topology.Ensure);
// until it does, publishes fail with no responders and are retried.
func New(js JetStream, opts ...Option) (*Publisher, error) {
	if js == nil {
		return nil, fmt.Errorf("%w: nil JetStream", ErrOption)
	}
	cfg := defaults()
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o.apply(&cfg); err != nil {
			return nil, err
		}
	}
	p := &Publisher{
		js:      js,
		cfg:     cfg,
		slots:   make(chan struct{}, cfg.maxPending),
		queue:   make(chan *Pending, cfg.maxPending),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		pending: make(map[*Pending]struct{}, cfg.maxPending),
	}
	go p.collect()
	return p, nil
}

// Publish validates e, publishes it and waits for the stream's ack. A
// validation error wraps touchpoint.ErrInvalid (or ErrUnknownType) and
// nothing is sent; a failure after all retries wraps [ErrNotStored]. If ctx
// ends first, Publish returns ctx's error and the event may still be stored:
// publishing it again is safe (same source and id, deduplicated).
func (p *Publisher) Publish(ctx context.Context, e touchpoint.Event) (Result, error) {
	pe, err := p.publishAsync(ctx, &e)
	if err != nil {
		return Result{}, err
	}
	return pe.Wait(ctx)
}

// PublishAsync validates e and sends it, returning a handle for its
// result. It blocks while MaxPending events are in flight; an in-flight
// event always resolves within about (MaxRetries+1) × AckTimeout plus the
// backoff, so the wait is bounded.
func (p *Publisher) PublishAsync(e touchpoint.Event) (*Pending, error) {
	return p.publishAsync(context.Background(), &e)
}

func (p *Publisher) publishAsync(ctx context.Context, e *touchpoint.Event) (*Pending, error) {
	if _, err := touchpoint.Validate(e, p.cfg.now()); err != nil {
		return nil, fmt.Errorf("publish: %s %q from %q: %w", e.Type, e.ID, e.Source, err)
	}
	msg, err := stream.NewFactMsg(e)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.stop:
		return nil, ErrClosed
	}
	pe := &Pending{msg: msg, done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.slots
		return nil, ErrClosed
	}
	p.pending[pe] = struct{}{}
	p.mu.Unlock()
	p.send(pe)
	return pe, nil
}

// send makes one attempt. Its outcome reaches the collector through the
// queue, which has room: every queued event holds a slot.
func (p *Publisher) send(pe *Pending) {
	pe.attempts++
	fut, err := p.js.PublishMsgAsync(pe.msg, jetstream.WithStallWait(p.cfg.ackTimeout))
	if err != nil {
		p.failed(pe, err)
		return
	}
	pe.fut = fut
	pe.deadline = time.Now().Add(p.cfg.ackTimeout)
	p.queue <- pe
}

// collect awaits acks in send order. Acks mostly arrive in that order, so
// one goroutine and one timer serve every event; a missing ack delays the
// results behind it by at most AckTimeout.
func (p *Publisher) collect() {
	defer close(p.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case pe := <-p.queue:
			p.await(pe, timer)
		case <-p.stop:
			return
		}
	}
}

func (p *Publisher) await(pe *Pending, timer *time.Timer) {
	ok, errc := pe.fut.Ok(), pe.fut.Err()
	select {
	case ack := <-ok:
		p.acked(pe, ack)
		return
	case err := <-errc:
		p.failed(pe, err)
		return
	default:
	}
	wait := time.Until(pe.deadline)
	if wait <= 0 {
		p.failed(pe, errAckTimeout)
		return
	}
	timer.Reset(wait)
	defer timer.Stop()
	select {
	case ack := <-ok:
		p.acked(pe, ack)
	case err := <-errc:
		p.failed(pe, err)
	case <-timer.C:
		p.failed(pe, errAckTimeout)
	}
}

func (p *Publisher) acked(pe *Pending, ack *jetstream.PubAck) {
	p.finish(pe, Result{Stream: ack.Stream, Seq: ack.Sequence, Duplicate: ack.Duplicate, Attempts: pe.attempts}, nil)
}

func (p *Publisher) failed(pe *Pending, err error) {
	if transient(err) && pe.attempts <= p.cfg.maxRetries {
		time.AfterFunc(p.backoff(pe.attempts), func() { p.send(pe) })
		return
	}
	p.finish(pe, Result{Attempts: pe.attempts}, fmt.Errorf("%w (subject %s, %d attempts): %w", ErrNotStored, pe.msg.Subject, pe.attempts, err))
}

func (p *Publisher) finish(pe *Pending, r Result, err error) {
	pe.res, pe.err = r, err
	pe.fut = nil
	p.mu.Lock()
	delete(p.pending, pe)
	p.mu.Unlock()
	close(pe.done)
	<-p.slots
}

// backoff before retry n (n >= 1): doubling from RetryBackoff, capped,
// with jitter.
func (p *Publisher) backoff(n int) time.Duration {
	d := p.cfg.backoff
	for i := 1; i < n && d < maxBackoffStep; i++ {
		d *= 2
	}
	d = min(d, maxBackoffStep)
	return d + rand.N(d/4+1)
}

// transient reports failures that a resend with the same message id can
// cure: the stream or the connection was away, or the ack was lost.
func transient(err error) bool {
	switch {
	case errors.Is(err, errAckTimeout),
		errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, nats.ErrTimeout),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, jetstream.ErrAsyncPublishTimeout),
		errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrReconnectBufExceeded),
		errors.Is(err, jetstream.ErrTooManyStalledMsgs),
		errors.Is(err, nats.ErrStaleConnection),
		errors.Is(err, nats.ErrNoServers),
		errors.Is(err, io.EOF):
		return true
	}
	// A write on a connection the server just dropped (connection reset,
	// broken pipe): the client is reconnecting.
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	// 503: JetStream is temporarily unavailable (e.g. a leader election).
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.Code == 503
}

// Pending reports how many events are in flight.
func (p *Publisher) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pending)
}

// Flush waits until every event published before the call has its result
// (stored or finally failed), or ctx ends. It does not stop new publishes.
func (p *Publisher) Flush(ctx context.Context) error {
	p.mu.Lock()
	waits := make([]*Pending, 0, len(p.pending))
	for pe := range p.pending {
		waits = append(waits, pe)
	}
	p.mu.Unlock()
	for _, pe := range waits {
		select {
		case <-pe.done:
		case <-ctx.Done():
			return fmt.Errorf("publish: flush: %d events still in flight: %w", p.Pending(), ctx.Err())
		}
	}
	return nil
}

// Close stops accepting events (Publish and PublishAsync return
// [ErrClosed]) and waits for the in-flight ones, like Flush. If ctx ends
// first it returns ctx's error; the remaining events still finish in the
// background. Close does not close the NATS connection, which the caller
// owns (close it after Close returns). Closing twice is safe.
func (p *Publisher) Close(ctx context.Context) error {
	p.mu.Lock()
	first := !p.closed
	p.closed = true
	p.mu.Unlock()
	if err := p.Flush(ctx); err != nil {
		if first {
			go func() {
				_ = p.Flush(context.Background())
				close(p.stop)
			}()
		}
		return err
	}
	if first {
		close(p.stop)
		<-p.done
	}
	return nil
}
