package opsstatus_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/natsserver/natstest"
	"github.com/klantreis/journey/pkg/opsstatus"
	"github.com/klantreis/journey/pkg/stream"
)

func connect(t *testing.T, c stream.Conn) jetstream.JetStream {
	t.Helper()
	nc, js, err := stream.Connect(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return js
}

// The api's read-only credentials read the lag of a durable consumer, its
// drain rate between two snapshots with the ETA that follows, and the dead
// letters per consumer; an ephemeral consumer is not reported.
func TestSnapshotWithTheAPIsCredentials(t *testing.T) {
	ctx := context.Background()
	s := natstest.StartSecure(t, stream.DefaultAccessNames())
	admin := connect(t, s.Conn(stream.UserAdmin))
	if err := stream.DefaultTopology().Ensure(ctx, admin); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := admin.Publish(ctx, stream.PublishSubject("visit", "c-"+string(rune('a'+i))), []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	for subj, n := range map[string]int{stream.DeadLetterSubject("writer"): 2, stream.DeadLetterSubject("journey-projector-p3"): 1} {
		for range n {
			if _, err := admin.Publish(ctx, subj, []byte("{}")); err != nil {
				t.Fatal(err)
			}
		}
	}
	ts, err := admin.Stream(ctx, stream.TouchpointStream)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := ts.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "writer", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{}); err != nil {
		t.Fatal(err)
	}
	ack := func(n int) {
		batch, err := cons.Fetch(n, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	ack(4)

	clock := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	r := opsstatus.Reader{JS: connect(t, s.Conn(stream.UserAPI)), Now: func() time.Time { return clock },
		Streams: []string{stream.TouchpointStream, stream.DeadLetterStream, "PROJECTOR_OUTBOX"}, DeadLetterStream: stream.DeadLetterStream}
	first, err := r.Read(ctx, nil)
	if err != nil {
		t.Fatalf("read as the api: %v", err)
	}
	if len(first.Consumers) != 1 || first.Consumers[0].Name != "writer" || first.Consumers[0].Lag != 6 || first.Consumers[0].ETASeconds != -1 {
		t.Fatalf("first snapshot consumers %+v, want only writer with lag 6 and no ETA yet", first.Consumers)
	}
	if got := first.DeadLetters; got["writer"] != 2 || got["journey-projector-p3"] != 1 || len(got) != 2 {
		t.Errorf("dead letters %v, want writer 2 and journey-projector-p3 1", got)
	}
	if len(first.Missing) != 1 || first.Missing[0] != "PROJECTOR_OUTBOX" {
		t.Errorf("missing %v, want PROJECTOR_OUTBOX (not created by the topology)", first.Missing)
	}

	ack(2)
	clock = clock.Add(4 * time.Second)
	second, err := r.Read(ctx, &first)
	if err != nil {
		t.Fatal(err)
	}
	c := second.Consumers[0]
	t.Logf("after 2 more acks in 4s: lag %d, rate %.2f/s, ETA %.1fs", c.Lag, c.RatePerSec, c.ETASeconds)
	if c.Lag != 4 || c.RatePerSec != 0.5 || c.ETASeconds != 8 {
		t.Errorf("second snapshot %+v, want lag 4, 0.5/s, ETA 8s", c)
	}
	for _, st := range second.Streams {
		if st.Name == stream.TouchpointStream && st.Messages != 10 {
			t.Errorf("TOUCHPOINTS holds %d messages, want 10", st.Messages)
		}
	}
}
