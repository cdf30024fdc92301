package journeyctl_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/natsserver/natstest"
	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/services/journeyctl"
)

// BenchmarkReplay compares a replay of a 20 000-event slice to a subject
// prefix (decode, select, re-encode, publish with acks, checkpoints) with
// a raw ordered consume of the same slice. Figures: docs/performance.md.
func BenchmarkReplay(b *testing.B) {
	const n = 20000
	url := natstest.URL(b)
	ch := warehousetest.Config(b)
	nc, js, err := stream.Connect(stream.Conn{URL: url, ReconnectWait: 100 * time.Millisecond, RequestTimeout: 5 * time.Second}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	ctx := context.Background()
	if err := stream.DefaultTopology().Ensure(ctx, js); err != nil {
		b.Fatal(err)
	}
	for i, f := range manyFixtures(n) {
		ev, err := touchpoint.New(f.source, f.id, f.customer, f.at, payloadOf(f.kind, i))
		if err != nil {
			b.Fatal(err)
		}
		m, _ := stream.NewFactMsg(&ev)
		if _, err := js.PublishMsgAsync(m); err != nil {
			b.Fatal(err)
		}
		if i%2000 == 1999 {
			<-js.PublishAsyncComplete() // the client allows 4000 in flight
		}
	}
	<-js.PublishAsyncComplete()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "DOWN", Subjects: []string{"down.>"}, Duplicates: 2 * time.Minute}); err != nil {
		b.Fatal(err)
	}
	var cfg journeyctl.Config
	if err := envconfig.Process("JOURNEY_NOTHING_SET", &cfg); err != nil {
		b.Fatal(err)
	}
	cfg.NATS.URL, cfg.ClickHouse, cfg.Stream = url, ch, stream.DefaultTopology()

	b.Run("raw_ordered_consume", func(b *testing.B) {
		for b.Loop() {
			s, _ := js.Stream(ctx, stream.TouchpointStream)
			c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{stream.AllFactsFilter}})
			if err != nil {
				b.Fatal(err)
			}
			for got := 0; got < n; {
				batch, err := c.Fetch(500, jetstream.FetchMaxWait(time.Second))
				if err != nil {
					b.Fatal(err)
				}
				for range batch.Messages() {
					got++
				}
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("replay_to_subject", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			var out, errOut bytes.Buffer
			env := &journeyctl.Env{Config: cfg, Out: &out, Err: &errOut, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			if code := journeyctl.Run(ctx, []string{"--actor", "bench", "replay", "--to-subject", "down", "--id", fmt.Sprint("bench-", i, "-", time.Now().UnixNano())}, env); code != 0 {
				b.Fatalf("exit %d: %s", code, errOut.String())
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}
