package journeyctl_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/natsserver/natstest"
	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/stream"
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
	benchPublish(b, js, n, fixtureEvents(n))
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "DOWN", Subjects: []string{"down.>"}, Duplicates: 2 * time.Minute}); err != nil {
		b.Fatal(err)
	}
	cfg := ctlConfig(b, url, ch)

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
			if code, errOut := benchRun(ctx, cfg, "replay", "--to-subject", "down", "--id", fmt.Sprint("bench-", i, "-", time.Now().UnixNano())); code != 0 {
				b.Fatalf("exit %d: %s", code, errOut)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}
