package publish_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/publish"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
)

// BenchmarkThroughput compares the publisher (validate, encode, bounded
// async publish, ack bookkeeping) with raw jetstream PublishMsgAsync of the
// same messages, pre-built, in the same run against the same server.
// Every op is one event stored; ids are unique so nothing is deduplicated.
func BenchmarkThroughput(b *testing.B) {
	events := func(b *testing.B, run string) []touchpoint.Event {
		es := make([]touchpoint.Event, b.N)
		at := time.Now()
		for i := range es {
			es[i] = order(b, fmt.Sprintf("%s-%d-%d", run, b.N, i), fmt.Sprint("customer-", i%1000))
			es[i].Time = at
		}
		return es
	}
	run := 0
	b.Run("raw_jetstream", func(b *testing.B) {
		_, js := connect(b)
		freshStream(b, js)
		run++
		es := events(b, fmt.Sprint("raw", run))
		msgs := make([]*nats.Msg, len(es))
		for i := range es {
			m, err := stream.NewFactMsg(&es[i])
			if err != nil {
				b.Fatal(err)
			}
			msgs[i] = m
		}
		b.ResetTimer()
		for _, m := range msgs {
			// The same stall wait the publisher uses: when the server lags,
			// wait for acks instead of failing.
			if _, err := js.PublishMsgAsync(m, jetstream.WithStallWait(publish.DefaultAckTimeout)); err != nil {
				b.Fatal(err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			b.Fatal("acks missing")
		}
	})
	b.Run("publisher", func(b *testing.B) {
		_, js := connect(b)
		freshStream(b, js)
		run++
		es := events(b, fmt.Sprint("pub", run))
		p := newPublisher(b, js)
		b.ResetTimer()
		for i := range es {
			if _, err := p.PublishAsync(es[i]); err != nil {
				b.Fatal(err)
			}
		}
		if err := p.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
	})
	b.Run("publisher_sync", func(b *testing.B) {
		_, js := connect(b)
		freshStream(b, js)
		run++
		es := events(b, fmt.Sprint("sync", run))
		p := newPublisher(b, js)
		b.ResetTimer()
		for i := range es {
			if _, err := p.Publish(context.Background(), es[i]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
