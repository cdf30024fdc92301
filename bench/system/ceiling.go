package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
)

// Ceiling is one run of the raw measurements: what the machine does with
// the same events when no journey code is in the way (events per second).
type Ceiling struct {
	Publish float64 // JetStream async publish, 4096 in flight, waiting for every ack
	Pull    float64 // durable pull consumer, explicit ack of each message
	Ordered float64 // ordered (ephemeral, no acks) consumer
	Insert  float64 // clickhouse-go columnar batch insert into events, writer-sized batches
}

// rawEvents are the same simulator events in the forms the raw clients
// send: binary-mode messages with the dedup id, and events table rows.
type rawEvents struct {
	msgs []*nats.Msg
	rows []warehouse.EventRow
}

func makeRawEvents(seed uint64, customers, n int) (rawEvents, error) {
	gen := newGenerator(seed, customers)
	r := rawEvents{msgs: make([]*nats.Msg, n), rows: make([]warehouse.EventRow, n)}
	now := time.Now()
	for i := range n {
		e := gen.next(now)
		p, err := touchpoint.Validate(&e, now)
		if err != nil {
			return r, fmt.Errorf("bench: generated event invalid: %w", err)
		}
		m, err := stream.NewFactMsg(&e)
		if err != nil {
			return r, err
		}
		r.msgs[i] = m
		r.rows[i] = warehouse.NewEventRow(uint64(i+1), &e, &p, now)
	}
	return r, nil
}

// measureCeiling runs the four raw measurements on a fresh NATS server and
// database (fresh, so that no message id is a duplicate of an earlier run).
func measureCeiling(ctx context.Context, env *environment, ev rawEvents, insertBatch int) (Ceiling, error) {
	var c Ceiling
	sys, err := env.startSystem(ctx, false)
	if err != nil {
		return c, err
	}
	defer sys.stop()
	n := len(ev.msgs)

	js, err := jetstream.New(sys.nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return c, err
	}
	start := time.Now()
	for _, m := range ev.msgs {
		// Past 4096 in flight a publish waits for acks (the stall wait)
		// instead of failing: the ceiling includes that back-pressure.
		if _, err := js.PublishMsgAsync(m, jetstream.WithStallWait(30*time.Second)); err != nil {
			return c, fmt.Errorf("bench: raw publish: %w", err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(60 * time.Second):
		return c, fmt.Errorf("%w: raw publish: acks missing after 60s", ErrSystem)
	}
	c.Publish = float64(n) / time.Since(start).Seconds()
	if seq, err := sys.streamSeq(ctx); err != nil || seq != uint64(n) {
		return c, fmt.Errorf("%w: raw publish stored %d of %d (%v)", ErrSystem, seq, n, err)
	}

	cons, err := js.CreateOrUpdateConsumer(ctx, stream.TouchpointStream, jetstream.ConsumerConfig{
		Durable: "raw-pull", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 50000, FilterSubject: stream.AllFactsFilter,
	})
	if err != nil {
		return c, err
	}
	if c.Pull, err = consumeAll(ctx, cons, n, true); err != nil {
		return c, fmt.Errorf("bench: raw pull: %w", err)
	}
	oc, err := js.OrderedConsumer(ctx, stream.TouchpointStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{stream.AllFactsFilter}})
	if err != nil {
		return c, err
	}
	if c.Ordered, err = consumeAll(ctx, oc, n, false); err != nil {
		return c, fmt.Errorf("bench: raw ordered: %w", err)
	}

	start = time.Now()
	for i := 0; i < n; i += insertBatch {
		if err := sys.db.InsertEvents(ctx, ev.rows[i:min(i+insertBatch, n)]); err != nil {
			return c, fmt.Errorf("bench: raw insert: %w", err)
		}
	}
	c.Insert = float64(n) / time.Since(start).Seconds()
	return c, nil
}

func consumeAll(ctx context.Context, cons jetstream.Consumer, n int, ack bool) (float64, error) {
	it, err := cons.Messages(jetstream.PullMaxMessages(5000))
	if err != nil {
		return 0, err
	}
	defer it.Stop()
	start := time.Now()
	for got := 0; got < n; got++ {
		m, err := it.Next()
		if err != nil {
			return 0, err
		}
		if ack {
			if err := m.Ack(); err != nil {
				return 0, err
			}
		}
	}
	return float64(n) / time.Since(start).Seconds(), ctx.Err()
}
