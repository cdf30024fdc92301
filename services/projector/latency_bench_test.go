package projector_test

import (
	"context"
	"os"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/projection"
	"github.com/klantreis/journey/pkg/stream"
)

// benchRate is the publish rate of BenchmarkLatency (events/s): the
// issue's 10 k/s, or JOURNEY_BENCH_RATE to compare rates with one build.
func benchRate() int {
	if n, _ := strconv.Atoi(os.Getenv("JOURNEY_BENCH_RATE")); n > 0 {
		return n
	}
	return 10000
}

// BenchmarkLatency publishes at a fixed rate and measures, outside the
// projector, the time from publish to the customer's state in the KV
// bucket reflecting the event (a KV watch sees a record whose LastSeq
// reaches the event's stream sequence). One run is one sample of 10 s.
func BenchmarkLatency(b *testing.B) {
	br := freshStreams(b)
	nc := br.nc
	// The publisher's window must not stall at this rate while the broker
	// is busy storing what the projector writes.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(1<<16))
	if err != nil {
		b.Fatal(err)
	}
	cfg := br.migratedConfig(b)
	cfg.Projector.BatchSize = 10000           // the default
	cfg.Projector.WarehouseWait = time.Second // the default
	latencyRate := benchRate()
	if d, err := time.ParseDuration(os.Getenv("JOURNEY_BENCH_BATCH_WAIT")); err == nil {
		cfg.Projector.BatchAge = d
	}
	start(b, cfg)
	ctx := context.Background()
	// Wait until the projector is consuming.
	for i := 0; ; i++ {
		if _, err := js.Consumer(ctx, stream.TouchpointStream, cfg.Projector.Durable+"-p3"); err == nil {
			break
		}
		if i > 600 {
			b.Fatal("projector did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var kv jetstream.KeyValue
	for i := 0; i < 100; i++ {
		if kv, err = js.KeyValue(ctx, cfg.Projector.Bucket); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		b.Fatal(err)
	}
	// Warm up: the projector's first batches (consumer start, first KV
	// reads) are not the steady state this measures.
	publish(b, js, journeys(99, 200, time.Now().UTC()))
	waitDrained(b, js, cfg.Projector.Durable, 5*time.Minute)
	w, err := kv.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()

	const seconds = 10
	events := journeys(4, latencyRate*seconds/8, time.Now().UTC())
	n := min(len(events), latencyRate*seconds)
	events = events[:n]

	var mu sync.Mutex
	type pub struct {
		seq uint64
		at  time.Time
	}
	pending := map[string][]pub{} // customer -> published, not yet seen in the KV
	updates := map[string][]pub{} // customer -> KV updates seen (LastSeq, when)
	var lat []time.Duration
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range w.Updates() {
			if e == nil {
				continue
			}
			at := time.Now()
			rec, err := projection.DecodeRecord(e.Value())
			if err != nil {
				continue
			}
			id, _ := stream.CustomerID(e.Key())
			mu.Lock()
			// The record's LastSeq event is now reflected. Older pending
			// events of the customer were coalesced with it or changed
			// nothing (and so were never written): they are not sampled,
			// or a no-op would count until the customer's next event.
			ps := pending[id]
			k := 0
			for _, p := range ps {
				if p.seq == rec.LastSeq {
					lat = append(lat, at.Sub(p.at))
				} else if p.seq > rec.LastSeq {
					ps[k] = p
					k++
				}
			}
			pending[id] = ps[:k]
			updates[id] = append(updates[id], pub{rec.LastSeq, at})
			mu.Unlock()
		}
	}()

	b.ResetTimer()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	begin := time.Now()
	var acks sync.WaitGroup
	for i := 0; i < n; {
		<-tick.C
		due := int(time.Since(begin).Seconds() * float64(latencyRate))
		for ; i < n && i < due; i++ {
			m, err := stream.NewFactMsg(&events[i])
			if err != nil {
				b.Fatal(err)
			}
			t := time.Now()
			customer := events[i].Subject
			f, err := js.PublishMsgAsync(m)
			if err != nil {
				b.Fatal(err)
			}
			acks.Add(1)
			go func() {
				defer acks.Done()
				select {
				case a := <-f.Ok():
					mu.Lock()
					// The state may be written before the ack reaches us.
					matched := false
					for _, u := range updates[customer] {
						if u.seq == a.Sequence {
							lat = append(lat, u.at.Sub(t))
							matched = true
							break
						}
					}
					if !matched {
						pending[customer] = append(pending[customer], pub{a.Sequence, t})
					}
					mu.Unlock()
				case <-f.Err():
				}
			}()
		}
	}
	acks.Wait()
	waitDrained(b, js, cfg.Projector.Durable, 5*time.Minute)
	time.Sleep(500 * time.Millisecond)
	w.Stop()
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	if len(lat) == 0 {
		b.Fatal("no latency samples")
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	b.ReportMetric(float64(q(0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(q(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(latencyRate), "rate-events/s")
	b.Logf("%d events at %d/s: %d samples, p50 %s p90 %s p99 %s max %s", n, latencyRate, len(lat), q(0.5), q(0.9), q(0.99), lat[len(lat)-1])
}
