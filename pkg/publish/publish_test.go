package publish_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/natsserver"
	"github.com/klantreis/journey/internal/natsserver/natstest"
	"github.com/klantreis/journey/pkg/publish"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
)

// testServer is one test's embedded server: natstest explains why tests
// no longer share one per package (a shared server failed a create with
// "error creating store for stream" in CI).
type testServer struct {
	mu  sync.Mutex
	srv *natsserver.Server
}

// restart shuts the server down and starts it again on the same port and
// directory, as a broker restart does.
func (s *testServer) restart(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.srv.Restart()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Shutdown)
	s.srv = n
}

// connect starts a server for the test and opens a connection that rides
// out its restarts, as stream.Connect does in the services.
func connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	_, nc, js := connectServer(t)
	return nc, js
}

func connectServer(t testing.TB) (*testServer, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	ts := &testServer{srv: natstest.Start(t)}
	nc, err := nats.Connect(ts.srv.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return ts, nc, js
}

var streamSeq atomic.Int64

// freshStream creates the touchpoint stream under a name of its own (the
// publisher only knows subjects); it goes with the test's server.
func freshStream(t testing.TB, js jetstream.JetStream) jetstream.Stream {
	t.Helper()
	cfg := stream.DefaultTopology().TouchpointConfig()
	cfg.Name = fmt.Sprintf("TP_%d", streamSeq.Add(1))
	s, err := js.CreateStream(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func stored(t testing.TB, s jetstream.Stream) uint64 {
	t.Helper()
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func newPublisher(t testing.TB, js publish.JetStream, opts ...publish.Option) *publish.Publisher {
	t.Helper()
	p, err := publish.New(js, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return p
}

func order(t testing.TB, id, customer string) touchpoint.Event {
	t.Helper()
	e, err := touchpoint.New("webshop", id, customer, time.Now(), touchpoint.Order{
		OrderID: "o-" + id, Status: touchpoint.StatusPlaced, Amount: touchpoint.Amount{Cents: 1999}, Currency: "EUR", Items: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestPublishResults(t *testing.T) {
	_, js := connect(t)
	s := freshStream(t, js)
	p := newPublisher(t, js)
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		r, err := p.Publish(ctx, order(t, fmt.Sprint("e", i), fmt.Sprint("acme.nl/", i)))
		if err != nil {
			t.Fatal(err)
		}
		want := publish.Result{Stream: s.CachedInfo().Config.Name, Seq: uint64(i), Attempts: 1}
		if r != want {
			t.Fatalf("result %+v, want %+v", r, want)
		}
	}
	// What is stored is the event, in binary mode, on the customer's subject.
	m, err := s.GetMsg(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	e, err := stream.DecodeMsg(m.Header, m.Data)
	if err != nil || e.ID != "e2" || e.Subject != "acme.nl/2" {
		t.Fatalf("stored %+v %v", e, err)
	}
	if m.Header.Get(jetstream.MsgIDHeader) != stream.MsgID("webshop", "e2") {
		t.Fatalf("message id %q", m.Header.Get(jetstream.MsgIDHeader))
	}
	if _, _, key, ok := stream.ParseStoredSubject(m.Subject); !ok || key != stream.CustomerKey("acme.nl/2") {
		t.Fatalf("subject %s", m.Subject)
	}
}

func TestDuplicateOnResend(t *testing.T) {
	_, js := connect(t)
	s := freshStream(t, js)
	p := newPublisher(t, js)
	ctx := context.Background()
	e := order(t, "e-1", "c-1")
	first, err := p.Publish(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	again, err := p.Publish(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if first.Duplicate || !again.Duplicate || again.Seq != first.Seq {
		t.Fatalf("first %+v, resend %+v", first, again)
	}
	// Async resends are flagged too.
	pe, err := p.PublishAsync(e)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := pe.Wait(ctx); err != nil || !r.Duplicate {
		t.Fatalf("async resend %+v %v", r, err)
	}
	if n := stored(t, s); n != 1 {
		t.Fatalf("stored %d", n)
	}
}

func TestValidationErrorNamesField(t *testing.T) {
	_, js := connect(t)
	s := freshStream(t, js)
	p := newPublisher(t, js)
	ctx := context.Background()

	bad, err := touchpoint.New("survey-tool", "s-1", "c-1", time.Now(), touchpoint.Survey{SurveyID: "nps-q1", Score: 11})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Publish(ctx, bad)
	var ve *touchpoint.ValidationError
	if !errors.Is(err, touchpoint.ErrInvalid) || !errors.As(err, &ve) || ve.First().Field != "data.score" || ve.First().Rule != "maximum" {
		t.Fatalf("got %v", err)
	}
	if _, err := p.PublishAsync(bad); !errors.Is(err, touchpoint.ErrInvalid) {
		t.Fatalf("async: %v", err)
	}

	noCustomer := order(t, "o-1", "")
	if _, err := p.Publish(ctx, noCustomer); !errors.As(err, &ve) || ve.First().Field != "subject" {
		t.Fatalf("missing customer: %v", err)
	}
	future := order(t, "o-2", "c")
	future.Time = time.Now().Add(8 * 24 * time.Hour)
	if _, err := p.Publish(ctx, future); !errors.As(err, &ve) || ve.First().Field != "time" {
		t.Fatalf("future: %v", err)
	}
	unknown := order(t, "o-3", "c")
	unknown.Type = "com.example.click.v1"
	if _, err := p.Publish(ctx, unknown); !errors.Is(err, touchpoint.ErrUnknownType) {
		t.Fatalf("unknown type: %v", err)
	}
	derived := order(t, "o-4", "c")
	derived.Type = touchpoint.TypeStageChanged
	if _, err := p.Publish(ctx, derived); !errors.Is(err, touchpoint.ErrInvalid) {
		t.Fatalf("derived type: %v", err)
	}
	// Customer ids are never silently changed: one that NATS headers or
	// the warehouse could not keep as sent is refused before it is sent.
	for _, id := range []string{"bad-nl\nx", "a\rb", "a\x00b", "a\tb", "a\x1bb", "a\x7fb", "a\u0085b"} {
		_, err := p.Publish(ctx, order(t, "o-ctl", id))
		if !errors.As(err, &ve) || ve.First().Field != "subject" || !strings.Contains(err.Error(), "must not contain control characters") {
			t.Fatalf("customer id %q: %v", id, err)
		}
	}
	if _, err := p.Publish(ctx, order(t, "o-ok", "bad-nl x")); err != nil {
		t.Fatalf("a space in a customer id: %v", err)
	}
	if n := stored(t, s); n != 1 {
		t.Fatalf("%d events reached the stream, want only the valid one", n)
	}
}

func TestNowOptionDrivesFutureRule(t *testing.T) {
	_, js := connect(t)
	freshStream(t, js)
	later := time.Now().Add(30 * 24 * time.Hour)
	p := newPublisher(t, js, publish.Now(func() time.Time { return later }))
	e := order(t, "o-1", "c")
	e.Time = later.Add(-time.Hour) // 29 days ahead of the real clock, 1 hour behind the publisher's
	if _, err := p.Publish(context.Background(), e); err != nil {
		t.Fatal(err)
	}
}

func TestPublishAsyncBoundedAndComplete(t *testing.T) {
	const n, maxPending = 3000, 64
	_, js := connect(t)
	s := freshStream(t, js)
	p := newPublisher(t, js, publish.MaxPending(maxPending))
	handles := make([]*publish.Pending, 0, n)
	peak := 0
	for i := 0; i < n; i++ {
		pe, err := p.PublishAsync(order(t, fmt.Sprint("e", i), fmt.Sprint("c", i%50)))
		if err != nil {
			t.Fatal(err)
		}
		handles = append(handles, pe)
		peak = max(peak, p.Pending())
	}
	if peak > maxPending {
		t.Fatalf("%d in flight, bound %d", peak, maxPending)
	}
	seqs := map[uint64]bool{}
	for _, pe := range handles {
		r, err := pe.Wait(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if r.Duplicate || seqs[r.Seq] {
			t.Fatalf("result %+v", r)
		}
		seqs[r.Seq] = true
	}
	if got := stored(t, s); got != n {
		t.Fatalf("stored %d, want %d", got, n)
	}
}

// TestRetriesUntilStreamExists: with no stream there are no responders;
// the publisher retries with the same message id until the stream appears.
func TestRetriesUntilStreamExists(t *testing.T) {
	_, js := connect(t)
	p := newPublisher(t, js, publish.RetryBackoff(20*time.Millisecond), publish.AckTimeout(time.Second), publish.MaxRetries(20))
	pe, err := p.PublishAsync(order(t, "early", "c"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	select {
	case <-pe.Done():
		r, err := pe.Wait(context.Background())
		t.Fatalf("resolved before the stream existed: %+v %v", r, err)
	default:
	}
	s := freshStream(t, js)
	r, err := pe.Wait(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r.Attempts < 2 || r.Seq != 1 || r.Duplicate {
		t.Fatalf("result %+v", r)
	}
	if got := stored(t, s); got != 1 {
		t.Fatalf("stored %d", got)
	}
}

func TestNotStoredAfterRetries(t *testing.T) {
	_, js := connect(t)
	p := newPublisher(t, js, publish.RetryBackoff(10*time.Millisecond), publish.MaxRetries(1))
	start := time.Now()
	_, err := p.Publish(context.Background(), order(t, "lost", "c"))
	if !errors.Is(err, publish.ErrNotStored) || !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Fatalf("got %v", err)
	}
	t.Logf("gave up after %s: %v", time.Since(start), err)
}

// TestRetriesAcrossRestart: events published while the server restarts
// are all stored, none twice.
func TestRetriesAcrossRestart(t *testing.T) {
	const n = 4000
	ts, _, js := connectServer(t)
	s := freshStream(t, js)
	name := s.CachedInfo().Config.Name
	p := newPublisher(t, js, publish.AckTimeout(2*time.Second), publish.MaxRetries(10), publish.RetryBackoff(50*time.Millisecond), publish.MaxPending(256))

	handles := make(chan *publish.Pending, n)
	pubErr := make(chan error, 1)
	go func() {
		defer close(handles)
		for i := 0; i < n; i++ {
			pe, err := p.PublishAsync(order(t, fmt.Sprint("r", i), fmt.Sprint("c", i%97)))
			if err != nil {
				pubErr <- err
				return
			}
			handles <- pe
			if i%200 == 0 {
				time.Sleep(5 * time.Millisecond) // spread the load over the restart
			}
		}
	}()
	time.Sleep(40 * time.Millisecond)
	ts.restart(t)

	retried, dups := 0, 0
	count := 0
	for pe := range handles {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		r, err := pe.Wait(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		count++
		if r.Attempts > 1 {
			retried++
		}
		if r.Duplicate {
			dups++
		}
	}
	select {
	case err := <-pubErr:
		t.Fatal(err)
	default:
	}
	if count != n {
		t.Fatalf("%d results, want %d", count, n)
	}
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if got := stored(t, s); got != n {
		t.Fatalf("stored %d, want %d unique events", got, n)
	}
	t.Logf("%d events retried, %d acked as duplicates of a lost ack", retried, dups)
}

func TestFlushAndClose(t *testing.T) {
	_, js := connect(t)
	s := freshStream(t, js)
	p, err := publish.New(js)
	if err != nil {
		t.Fatal(err)
	}
	var handles []*publish.Pending
	for i := 0; i < 500; i++ {
		pe, err := p.PublishAsync(order(t, fmt.Sprint("f", i), "c"))
		if err != nil {
			t.Fatal(err)
		}
		handles = append(handles, pe)
	}
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, pe := range handles {
		select {
		case <-pe.Done():
		default:
			t.Fatal("Flush returned before a result")
		}
	}
	if p.Pending() != 0 || stored(t, s) != 500 {
		t.Fatalf("pending %d, stored %d", p.Pending(), stored(t, s))
	}
	// Close drains what is in flight, then refuses.
	for i := 0; i < 200; i++ {
		if _, err := p.PublishAsync(order(t, fmt.Sprint("g", i), "c")); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := stored(t, s); got != 700 {
		t.Fatalf("Close did not drain: stored %d", got)
	}
	if _, err := p.Publish(context.Background(), order(t, "late", "c")); !errors.Is(err, publish.ErrClosed) {
		t.Fatalf("publish after close: %v", err)
	}
	if _, err := p.PublishAsync(order(t, "late", "c")); !errors.Is(err, publish.ErrClosed) {
		t.Fatalf("async after close: %v", err)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestContextCancel(t *testing.T) {
	_, js := connect(t) // no stream: every publish keeps retrying
	p := newPublisher(t, js, publish.MaxPending(1), publish.RetryBackoff(10*time.Millisecond), publish.MaxRetries(1000))

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := p.Publish(ctx, order(t, "a", "c")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting for the ack: %v", err)
	}
	// The first event still holds the only slot: the next waits for it.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if _, err := p.Publish(ctx2, order(t, "b", "c")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting for a slot: %v", err)
	}
	// A bounded Close reports what is left; once the stream exists the
	// event is stored in the background.
	ctx3, cancel3 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel3()
	if err := p.Close(ctx3); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("close with events in flight: %v", err)
	}
	s := freshStream(t, js)
	deadline := time.Now().Add(10 * time.Second)
	for stored(t, s) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the in-flight event was never stored")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestOptionsAreChecked(t *testing.T) {
	_, js := connect(t)
	for _, o := range []publish.Option{
		publish.MaxPending(0), publish.AckTimeout(0), publish.MaxRetries(-1), publish.RetryBackoff(-time.Second), publish.Now(nil),
	} {
		if _, err := publish.New(js, o); !errors.Is(err, publish.ErrOption) {
			t.Errorf("%T(%v): got %v", o, o, err)
		}
	}
	if _, err := publish.New(nil); !errors.Is(err, publish.ErrOption) {
		t.Errorf("nil js: %v", err)
	}
}
