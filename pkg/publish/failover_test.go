package publish_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/natsserver/natscluster"
	"github.com/klantreis/journey/pkg/publish"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
)

// A publisher connected through JOURNEY_NATS_URL with every node of a
// 3-node cluster plus one dead address: under load, the node its
// connection is on is SIGKILLed. The connection moves to another node, the
// publisher (retrying with the same Nats-Msg-Id) goes on, and the R3
// stream holds every event once, counted by unique (source, id). The gap
// in acknowledgements is printed.
func TestPublisherFailsOverWhenItsServerIsKilled(t *testing.T) {
	cl := natscluster.Start(t, 3)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "nats://" + l.Addr().String()
	l.Close()
	nc, js, err := stream.Connect(stream.Conn{URL: dead + "," + cl.URLs(), ReconnectWait: 100 * time.Millisecond, RequestTimeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	topo := stream.DefaultTopology()
	topo.Replicas = 3
	deadline := time.Now().Add(30 * time.Second)
	for { // the meta leader is elected a moment after the nodes listen
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := topo.Ensure(ctx, js)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("R3 streams not created: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	pub, err := publish.New(js, publish.AckTimeout(2*time.Second), publish.MaxRetries(20), publish.MaxPending(512))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(context.Background())

	const n = 8000
	at := time.Now().Add(-time.Hour).UTC()
	events := make([]touchpoint.Event, n)
	for i := range events {
		e, err := touchpoint.New("failover-test", fmt.Sprintf("e-%d", i), fmt.Sprintf("cust-%d", i%500), at.Add(time.Duration(i)*time.Millisecond),
			touchpoint.Visit{Common: touchpoint.Common{Channel: "web"}})
		if err != nil {
			t.Fatal(err)
		}
		events[i] = e
	}
	var mu sync.Mutex
	var acks []time.Time
	var failed int
	var wg sync.WaitGroup
	send := func(e touchpoint.Event) {
		defer wg.Done()
		for {
			pe, err := pub.PublishAsync(e)
			if err == nil {
				_, err = pe.Wait(context.Background())
			}
			mu.Lock()
			if err == nil {
				acks = append(acks, time.Now())
				mu.Unlock()
				return
			}
			failed++ // not stored after the retries: publish it again, as a producer would
			mu.Unlock()
		}
	}
	var killedNode, leader string
	var killed time.Time
	for i := range events {
		wg.Add(1)
		go send(events[i])
		if i%200 == 199 {
			time.Sleep(50 * time.Millisecond) // about 4 000 events/s
		}
		if i == n/3 {
			killedNode = nc.ConnectedServerName()
			if s, err := js.Stream(context.Background(), stream.TouchpointStream); err == nil && s.CachedInfo().Cluster != nil {
				leader = s.CachedInfo().Cluster.Leader
			}
			node := cl.Node(killedNode)
			if node == nil {
				t.Fatalf("connected to %q, not a node of the cluster", killedNode)
			}
			node.Kill()
			killed = time.Now()
		}
	}
	wg.Wait()
	// The longest gap between acknowledgements after the kill.
	var gap time.Duration
	prev := killed
	for _, a := range acks {
		if a.After(killed) {
			gap = max(gap, a.Sub(prev))
			prev = a
		}
	}
	uniq, msgs := countStored(t, js)
	t.Logf("TOUCHPOINTS leader %s; connected to %s, SIGKILLed after %d of %d events were sent; reconnected to %s; longest gap in acks after the kill %.2fs; "+
		"%d attempts failed after retries and were re-sent; %d acked, %d messages in the R3 stream, %d unique (source, id): %d lost, %d duplicated",
		leader, killedNode, n/3+1, n, nc.ConnectedServerName(), gap.Seconds(), failed, len(acks), msgs, uniq, n-uniq, msgs-uniq)
	if nc.ConnectedServerName() == killedNode {
		t.Fatalf("still connected to the killed node %s", killedNode)
	}
	if uniq != n || msgs != n {
		t.Fatalf("stream holds %d messages, %d unique (source, id); want %d of each", msgs, uniq, n)
	}
}

// countStored reads TOUCHPOINTS: distinct (source, id) and messages.
func countStored(t *testing.T, js jetstream.JetStream) (uniq, msgs int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var c jetstream.Consumer
	start := time.Now()
	for attempt := 1; ; attempt++ {
		actx, acancel := context.WithTimeout(ctx, 5*time.Second)
		var err error
		c, err = js.CreateConsumer(actx, stream.TouchpointStream, jetstream.ConsumerConfig{AckPolicy: jetstream.AckNonePolicy,
			MemoryStorage: true, Replicas: 1, InactiveThreshold: time.Minute})
		acancel()
		if err == nil {
			break
		}
		t.Logf("reading consumer, attempt %d after %.1fs: %v", attempt, time.Since(start).Seconds(), err)
		if ctx.Err() != nil {
			t.Fatalf("consumer: %v", err)
		}
	}
	s, err := js.Stream(ctx, stream.TouchpointStream)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	seen := map[string]bool{}
	for msgs < int(info.State.Msgs) {
		batch, err := c.Fetch(1000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("fetch after %d: %v", msgs, err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			msgs++
			e, err := stream.DecodeMsg(m.Headers(), m.Data())
			if err != nil {
				t.Fatalf("stored message %s: %v", m.Subject(), err)
			}
			seen[e.Source+"\x00"+e.ID] = true
		}
		if got == 0 {
			t.Fatalf("read %d of %d messages", msgs, info.State.Msgs)
		}
	}
	return len(seen), msgs
}
