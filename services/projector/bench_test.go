package projector_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/services/projector"
)

// BenchmarkDrain measures the projector end to end (KV states, ClickHouse
// rows, derived events) draining a pre-filled stream, and in the same run
// a raw ordered consume of the same stream: the baseline of what reading
// alone costs. b.N is ignored beyond 1: one drain is one sample; run with
// -count 3 for medians.
func BenchmarkDrain(b *testing.B) {
	now := time.Now().UTC()
	customers := benchCustomers()
	events := journeys(3, customers, now)
	br := brokerWith(b, events)
	js := br.js
	total := len(events)
	// A service process does not hold a million test events: free them so
	// that the garbage collector does not mark them throughout the drain.
	events = nil
	runtime.GC()

	b.ResetTimer()
	// Baseline: ordered consumer over every fact, no processing.
	t0 := time.Now()
	ctx := context.Background()
	oc, err := js.OrderedConsumer(ctx, stream.TouchpointStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{stream.AllFactsFilter}})
	if err != nil {
		b.Fatal(err)
	}
	it, err := oc.Messages(jetstream.PullMaxMessages(2000))
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < total; i++ {
		if _, err := it.Next(); err != nil {
			b.Fatal(err)
		}
	}
	it.Stop()
	raw := time.Since(t0)

	cfg := br.migratedConfig(b)
	cfg.Projector.BatchSize = 10000           // the default
	cfg.Projector.WarehouseWait = time.Second // the default
	cfg.Projector.CacheSize = 200_000         // the default
	if n := benchBatch(); n > 0 {
		cfg.Projector.BatchSize = n
	}
	t1 := time.Now()
	stop := start(b, cfg)
	waitDrained(b, js, cfg.Projector.Durable, 30*time.Minute)
	svc := time.Since(t1)
	waitWarehouse(b, js, cfg, 30*time.Minute)
	wh := time.Since(t1)
	stop()
	b.StopTimer()
	b.ReportMetric(float64(total)/svc.Seconds(), "events/s")
	b.ReportMetric(float64(total)/raw.Seconds(), "raw-events/s")
	b.ReportMetric(raw.Seconds()/svc.Seconds(), "ratio")
	b.ReportMetric(float64(total)/wh.Seconds(), "warehouse-events/s")
	b.Logf("%d events over %d customers: projector (states in KV, acked) %s, rows in ClickHouse %s, raw ordered consume %s", total, customers, svc, wh, raw)
	b.Logf("stored per event: %s", storedPerEvent(b, js, cfg, total))
}

// benchCustomers is how many customers BenchmarkDrain's stream holds: by
// default the 1 M events over ~100 k customers (journeys makes 8.5
// events per customer on average); JOURNEY_BENCH_CUSTOMERS for a quicker
// look (10000 ≈ 85 k events).
func benchCustomers() int {
	if n, _ := strconv.Atoi(os.Getenv("JOURNEY_BENCH_CUSTOMERS")); n > 0 {
		return n
	}
	return 117_650
}

// benchBatch overrides the configured batch size of BenchmarkDrain when
// JOURNEY_BENCH_BATCH is set, to compare sizes with one build; 0 otherwise.
func benchBatch() int {
	n, _ := strconv.Atoi(os.Getenv("JOURNEY_BENCH_BATCH"))
	return n
}

// BenchmarkKVCeiling is the broker's ceiling for what the projector must do
// at least once per changed customer: a compare-and-set write of a
// 1.2 KB state to a key-value bucket (file storage, history 1), 10 000
// keys, written asynchronously in windows of 5 000 the way the projector
// writes a batch. No consume, no ClickHouse, no derived events: compare it
// with BenchmarkDrain's events/s times the writes per event.
func BenchmarkKVCeiling(b *testing.B) {
	br := freshStreams(b)
	nc := br.nc
	const keys, window, n = 10000, 5000, 100000
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(2*window))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: randName("ceil_"), History: 1, Storage: jetstream.FileStorage})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = js.DeleteKeyValue(context.Background(), kv.Bucket()) })
	b.ResetTimer()
	took := writeAsyncWindow(b, js, "$KV."+kv.Bucket()+".", keys, n, window)
	b.ReportMetric(float64(n)/took.Seconds(), "puts/s")
}

// storedPerEvent is what the drain made the broker store, per event: the
// state writes, derived events, expiry index entries and outbox messages.
// Each stored message costs the broker a store and an acknowledgement
// whatever its size, so this is the drain's main cost driver.
func storedPerEvent(b *testing.B, js jetstream.JetStream, cfg projector.Config, total int) string {
	ctx := context.Background()
	var out []string
	for _, s := range []struct{ label, stream string }{
		{"states", "KV_" + cfg.Projector.Bucket},
		{"derived", stream.DerivedStream},
		{"index", "KV_" + cfg.Projector.IndexBucket},
		{"outbox", cfg.Projector.OutboxStream},
	} {
		st, err := js.Stream(ctx, s.stream)
		if err != nil {
			b.Fatalf("stream %s: %v", s.stream, err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			b.Fatalf("stream %s: %v", s.stream, err)
		}
		// LastSeq counts every message ever stored, also those a newer
		// value of the key or the work queue's ack has since removed.
		out = append(out, fmt.Sprintf("%s %.3f", s.label, float64(info.State.LastSeq)/float64(total)))
	}
	return strings.Join(out, ", ")
}
