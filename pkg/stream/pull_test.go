package stream_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/stream"
)

// A pull the server dropped without a word: the consumer's one waiting
// slot is taken, and a request that asks for heartbeats is then dropped
// silently (the server leaves it to the client to miss the heartbeats).
// A reader that waits 100 ms at a time never misses them, so its iterator
// would stay silent for good; Watched reports the silence at its limit,
// and a new pull gets the message.
func TestWatchedReportsALostPull(t *testing.T) {
	js, cons := reader(t, "PULLS", jetstream.ConsumerConfig{MaxWaiting: 1})
	ctx := context.Background()
	other, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Second)) // holds the one slot for a second
	if err != nil {
		t.Fatal(err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(10), jetstream.PullHeartbeat(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	// The iterator sends its pull on the first Next: while the slot is held.
	if _, err := it.Next(jetstream.NextMaxWait(100 * time.Millisecond)); !errors.Is(err, nats.ErrTimeout) {
		t.Fatalf("the first Next: want a timeout, got %v", err)
	}
	for range other.Messages() {
		t.Fatal("the slot holder got a message; none was published")
	}
	if _, err := js.Publish(ctx, "pulls.a", []byte("one")); err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumWaiting != 0 || info.NumPending != 1 {
		t.Fatalf("want the iterator's pull dropped (0 waiting) and the message pending, got %d waiting, %d pending", info.NumWaiting, info.NumPending)
	}

	const limit = time.Second
	pull := stream.Watch(it, limit)
	start := time.Now()
	for {
		m, err := pull.Next(100 * time.Millisecond)
		if errors.Is(err, stream.ErrSilentPull) {
			break
		}
		if err == nil {
			t.Fatalf("the dropped pull delivered %q", m.Data())
		}
		if !errors.Is(err, nats.ErrTimeout) {
			t.Fatal(err)
		}
		if time.Since(start) > 5*limit {
			t.Fatalf("no ErrSilentPull %s after the last message, limit %s", time.Since(start), limit)
		}
	}
	silent := time.Since(start)
	if silent < limit {
		t.Fatalf("ErrSilentPull after %s, before the limit %s", silent, limit)
	}
	if n := stream.HandBack(it); n != 0 {
		t.Fatalf("handed back %d messages; the iterator had none", n)
	}

	it, err = cons.Messages(jetstream.PullMaxMessages(10), jetstream.PullHeartbeat(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer it.Stop()
	pull = stream.Watch(it, limit)
	m, err := pull.Next(5 * time.Second)
	if err != nil {
		t.Fatalf("the new pull: %v", err)
	}
	if string(m.Data()) != "one" {
		t.Fatalf("the new pull delivered %q, want %q", m.Data(), "one")
	}
	t.Logf("the lost pull was reported after %s of silence (limit %s); the new pull delivered the message", silent.Round(time.Millisecond), limit)
}

// HandBack naks what the iterator holds but was not read: the next pull
// gets it at once, long before AckWait.
func TestHandBackNaksWhatWasNotRead(t *testing.T) {
	js, cons := reader(t, "HANDBACK", jetstream.ConsumerConfig{AckWait: time.Minute})
	ctx := context.Background()
	for _, b := range []string{"a", "b", "c"} {
		if _, err := js.Publish(ctx, "handback."+b, []byte(b)); err != nil {
			t.Fatal(err)
		}
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(10))
	if err != nil {
		t.Fatal(err)
	}
	m, err := it.Next(jetstream.NextMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	_ = m.Ack()
	waitUntilAckPending(t, cons, 2) // the other two are delivered to the iterator, unread
	if n := stream.HandBack(it); n != 2 {
		t.Fatalf("handed back %d, want the 2 unread", n)
	}
	batch, err := cons.Fetch(10, jetstream.FetchMaxWait(2*time.Second)) // well within the minute of AckWait
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for m := range batch.Messages() {
		got = append(got, string(m.Data()))
		_ = m.Ack()
	}
	slices.Sort(got) // naks are redelivered in the order they reached the server
	if !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("the next pull got %q, want [b c] at once", got)
	}
}

// reader makes a stream name (subjects "<name in lower case>.>") on a
// server of the test's own, and on it the explicit-ack durable "reader"
// with cfg's other settings.
func reader(t *testing.T, name string, cfg jetstream.ConsumerConfig) (jetstream.JetStream, jetstream.Consumer) {
	t.Helper()
	js := connect(t)
	ctx := context.Background()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{strings.ToLower(name) + ".>"}})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Durable, cfg.AckPolicy = "reader", jetstream.AckExplicitPolicy
	cons, err := s.CreateOrUpdateConsumer(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return js, cons
}

func waitUntilAckPending(t *testing.T, cons jetstream.Consumer, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		info, err := cons.Info(context.Background())
		if err == nil && info.NumAckPending == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ack pending never reached %d (%v, %v)", n, info, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
