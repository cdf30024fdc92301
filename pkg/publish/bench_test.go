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
	// setup gives every run its own fresh stream and events with ids no
	// other run has (prefix names the method).
	run := 0
	setup := func(b *testing.B, prefix string) (jetstream.JetStream, []touchpoint.Event) {
		_, js := connect(b)
		freshStream(b, js)
		run++
		id := fmt.Sprint(prefix, run)
		es := make([]touchpoint.Event, b.N)
		at := time.Now()
		for i := range es {
			es[i] = order(b, fmt.Sprintf("%s-%d-%d", id, b.N, i), fmt.Sprint("customer-", i%1000))
			es[i].Time = at
		}
		return js, es
	}
	b.Run("raw_jetstream", func(b *testing.B) {
		js, es := setup(b, "raw")
		msgs := make([]*nats.Msg, len(es))
		for i := range es {
			m, err := stream.NewFactMsg(&es[i])
			if err != nil {
				b.Fatal(err)
			}
			msgs[i] = m
		}
		b.ResetTimer()
		publishRaw(b, js, msgs)
	})
	b.Run("publisher", func(b *testing.B) {
		js, es := setup(b, "pub")
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
		js, es := setup(b, "sync")
		p := newPublisher(b, js)
		b.ResetTimer()
		for i := range es {
			if _, err := p.Publish(context.Background(), es[i]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// publishRaw is the baseline the publisher is measured against: msgs
// published async with raw jetstream, then every ack awaited.
func publishRaw(b *testing.B, js jetstream.JetStream, msgs []*nats.Msg) {
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
}

// BenchmarkThroughputInterleaved alternates chunks of raw jetstream async
// publishes (pre-built messages) and publisher PublishAsync+Flush (which
// validates and encodes inside the timing) against one stream, so both see
// the same server and machine load. One op = one event published by each;
// metrics are ns per event per method and publisher/raw throughput.
func BenchmarkThroughputInterleaved(b *testing.B) {
	const chunk = 500
	_, js := connect(b)
	freshStream(b, js)
	p := newPublisher(b, js)
	at := time.Now()
	raw := make([]*nats.Msg, b.N)
	ours := make([]touchpoint.Event, b.N)
	tag := fmt.Sprint(time.Now().UnixNano())
	for i := 0; i < b.N; i++ {
		e := order(b, fmt.Sprintf("raw-%s-%d", tag, i), fmt.Sprint("customer-", i%1000))
		e.Time = at
		m, err := stream.NewFactMsg(&e)
		if err != nil {
			b.Fatal(err)
		}
		raw[i] = m
		ours[i] = order(b, fmt.Sprintf("pub-%s-%d", tag, i), fmt.Sprint("customer-", i%1000))
		ours[i].Time = at
	}
	ctx := context.Background()
	var tRaw, tPub time.Duration
	b.ResetTimer()
	for lo := 0; lo < b.N; lo += chunk {
		hi := min(lo+chunk, b.N)
		t0 := time.Now()
		publishRaw(b, js, raw[lo:hi])
		t1 := time.Now()
		for i := lo; i < hi; i++ {
			if _, err := p.PublishAsync(ours[i]); err != nil {
				b.Fatal(err)
			}
		}
		if err := p.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		tRaw += t1.Sub(t0)
		tPub += t2.Sub(t1)
	}
	n := float64(b.N)
	b.ReportMetric(float64(tRaw.Nanoseconds())/n, "raw-ns/event")
	b.ReportMetric(float64(tPub.Nanoseconds())/n, "publisher-ns/event")
	b.ReportMetric(float64(tRaw)/float64(tPub), "publisher/raw-throughput")
}
