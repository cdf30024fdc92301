package projector_test

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/warehouse/warehousetest"
)

// BenchmarkDrain measures the projector end to end (KV states, ClickHouse
// rows, derived events) draining a pre-filled stream, and in the same run
// a raw ordered consume of the same stream: the baseline of what reading
// alone costs. b.N is ignored beyond 1: one drain is one sample; run with
// -count 3 for medians.
func BenchmarkDrain(b *testing.B) {
	_, js := freshStreams(b)
	now := time.Now().UTC()
	customers := benchCustomers()
	events := journeys(3, customers, now)
	publish(b, js, events)
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

	// A migrated database, so that the timing starts with ClickHouse ready.
	db := warehousetest.Open(b)
	chCfg := warehousetest.Config(b)
	chCfg.Database = db.Database()
	cfg := config(b, chCfg)
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
