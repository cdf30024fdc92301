package projector_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
)

// The same events arrive on both paths: once with Nats-Msg-Id (the
// collector and pkg/publish), and again without it, half in binary and
// half in structured mode (sdk-go's JetStream binding), so the stream
// holds every event twice under two sequences. The projector ends in the
// state of one delivery, and emits exactly the derived events that one
// delivery gives: none twice.
func TestSameEventOnBothPathsChangesNothingTwice(t *testing.T) {
	now := time.Now().UTC()
	events := journeys(7, 150, now)

	run := func(twice bool) (string, []string) {
		br := brokerWith(t, events)
		if twice {
			var msgs []*nats.Msg
			for i := range events {
				m, err := stream.NewFactMsg(&events[i])
				if err != nil {
					t.Fatal(err)
				}
				delete(m.Header, jetstream.MsgIDHeader)
				if i%2 == 1 {
					m = &nats.Msg{Subject: m.Subject, Data: events[i].MarshalStructured(), Header: nats.Header{}}
				}
				msgs = append(msgs, m)
			}
			for _, m := range msgs {
				if _, err := br.js.PublishMsg(context.Background(), m); err != nil {
					t.Fatal(err)
				}
			}
			info, err := br.js.Stream(context.Background(), stream.TouchpointStream)
			if err != nil {
				t.Fatal(err)
			}
			if got := info.CachedInfo().State.Msgs; got != uint64(2*len(events)) {
				t.Fatalf("the stream holds %d messages, want each of %d events twice", got, len(events))
			}
		}
		cfg := br.config(warehousetest.Config(t))
		start(t, cfg)
		waitDrained(t, br.js, cfg.Projector.Durable, 2*time.Minute)
		states := recordStates(kvStates(t, br.js, cfg.Projector.Bucket))
		return stateHash(states), derivedIDs(t, br.js)
	}
	onceHash, onceDerived := run(false)
	twiceHash, twiceDerived := run(true)
	t.Logf("%d events: %d derived events from one delivery, %d from two", len(events), len(onceDerived), len(twiceDerived))
	if twiceHash != onceHash {
		t.Fatalf("state hash %s after two deliveries, %s after one", twiceHash, onceHash)
	}
	if len(twiceDerived) != len(onceDerived) {
		t.Fatalf("%d derived events after two deliveries, %d after one", len(twiceDerived), len(onceDerived))
	}
	for i := range onceDerived {
		if onceDerived[i] != twiceDerived[i] {
			t.Fatalf("derived events differ: %s vs %s", onceDerived[i], twiceDerived[i])
		}
	}
}

// derivedIDs lists the DERIVED stream's events as sorted "type subject id"
// lines; a repeated line is a derived event emitted twice.
func derivedIDs(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	var out []string
	for _, e := range derivedEvents(t, js) {
		out = append(out, e.Type+" "+e.Subject+" "+e.ID)
	}
	sort.Strings(out)
	for i := 1; i < len(out); i++ {
		if out[i] == out[i-1] {
			t.Fatalf("derived event emitted twice: %s", out[i])
		}
	}
	return out
}

// derivedEvents reads every event the DERIVED stream holds, in stream
// order.
func derivedEvents(t *testing.T, js jetstream.JetStream) []touchpoint.Event {
	t.Helper()
	ctx := context.Background()
	info, err := js.Stream(ctx, stream.DerivedStream)
	if err != nil {
		t.Fatal(err)
	}
	total := info.CachedInfo().State.Msgs
	c, err := js.OrderedConsumer(ctx, stream.DerivedStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []touchpoint.Event
	for range total {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		e, err := stream.DecodeMsg(m.Headers(), m.Data())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}
