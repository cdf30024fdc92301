package projector_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
)

// BenchmarkCheckpoint compares the projector with checkpoints off and on
// (JOURNEY_BENCH_CHECKPOINT, default 2s) in one run, alternated, three
// rounds (JOURNEY_BENCH_ROUNDS), each sample on a fresh broker and
// database: 100 k events (JOURNEY_BENCH_EVENTS) spread over 10 k and over
// 100 k customers, drained from a pre-filled stream, and over 10 k
// customers published live at 5 k events/s (JOURNEY_BENCH_RATE) while the
// projector runs. It reports, per scenario and mode, the median of:
// messages the broker stored per touchpoint (every stream, the touchpoint
// included), of which state writes, and the drain rate (events / time
// until every event is acknowledged; for the live scenario, the time from
// the first publish). JOURNEY_BENCH_SCENARIOS picks scenarios by name.
// b.N is ignored.
func BenchmarkCheckpoint(b *testing.B) {
	every := 2 * time.Second
	if v := os.Getenv("JOURNEY_BENCH_CHECKPOINT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatal(err)
		}
		every = d
	}
	rounds := envInt("JOURNEY_BENCH_ROUNDS", 3)
	n := envInt("JOURNEY_BENCH_EVENTS", 100_000)
	rate := envInt("JOURNEY_BENCH_RATE", 5000)
	type scenario struct {
		name      string
		customers int
		live      bool
	}
	scenarios := []scenario{{"drain-10k", 10_000, false}, {"drain-100k", 100_000, false}, {"live-10k", 10_000, true}}
	if only := os.Getenv("JOURNEY_BENCH_SCENARIOS"); only != "" { // e.g. "live-10k"
		scenarios = slices.DeleteFunc(scenarios, func(sc scenario) bool { return !strings.Contains(only, sc.name) })
	}
	type sample = ckptSample
	got := map[string][]sample{}
	for r := 0; r < rounds; r++ {
		for _, sc := range scenarios {
			for _, ck := range []time.Duration{0, every} {
				mode := "off"
				if ck > 0 {
					mode = "on"
				}
				s := checkpointSample(b, n, sc.customers, sc.live, rate, ck)
				key := sc.name + "/" + mode
				got[key] = append(got[key], s)
				b.Logf("round %d %s checkpoint %s: %.3f stored msgs/touchpoint (%v), %.0f events/s", r+1, sc.name, mode, s.stored, s.by, s.rate)
			}
		}
	}
	for _, sc := range scenarios {
		for _, mode := range []string{"off", "on"} {
			ss := got[sc.name+"/"+mode]
			med := func(f func(sample) float64) float64 {
				v := make([]float64, len(ss))
				for i := range ss {
					v[i] = f(ss[i])
				}
				slices.Sort(v)
				return v[len(v)/2]
			}
			st, sts, rt := med(func(s sample) float64 { return s.stored }), med(func(s sample) float64 { return s.states }), med(func(s sample) float64 { return s.rate })
			b.Logf("median %s checkpoint %s (%d samples): %.3f stored msgs/touchpoint, states %.3f, %.0f events/s", sc.name, mode, len(ss), st, sts, rt)
			b.ReportMetric(st, sc.name+"-"+mode+"-stored/touchpoint")
			b.ReportMetric(rt, sc.name+"-"+mode+"-events/s")
		}
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// checkpointSample runs one projector over n events of customers on a
// fresh broker and database.
func checkpointSample(b *testing.B, n, customers int, live bool, rate int, every time.Duration) (s ckptSample) {
	br := freshStreams(b)
	js := br.js
	events := spread(n, customers, time.Now().UTC())
	cfg := br.migratedConfig(b)
	cfg.Projector.BatchSize, cfg.Projector.WarehouseWait, cfg.Projector.CacheSize = 10000, time.Second, 200_000 // the defaults
	// AckWait at least twice the checkpoint, as the projector requires.
	cfg.Projector.Checkpoint, cfg.Projector.CheckpointEvents, cfg.Projector.AckWait, cfg.Projector.IndexShards = every, 50000, max(30*time.Second, 2*every), 64
	var t0 time.Time
	var stop context.CancelFunc
	if live {
		stop = start(b, cfg)
		t0 = time.Now()
		const step = 100 * time.Millisecond
		per := max(rate/10, 1)
		next := t0
		for i := 0; i < len(events); i += per {
			publish(b, js, events[i:min(i+per, len(events))])
			next = next.Add(step)
			time.Sleep(time.Until(next))
		}
	} else {
		publish(b, js, events)
		events = nil
		runtime.GC()
		t0 = time.Now()
		stop = start(b, cfg)
	}
	waitDrained(b, js, cfg.Projector.Durable, 30*time.Minute)
	took := time.Since(t0)
	waitWarehouse(b, js, cfg, 30*time.Minute)
	stop()
	var total, states uint64
	for _, name := range []string{stream.TouchpointStream, "KV_" + cfg.Projector.Bucket, stream.DerivedStream, "KV_" + cfg.Projector.IndexBucket, cfg.Projector.OutboxStream} {
		seq := lastSeq(b, js, name)
		total += seq
		s.by = append(s.by, fmt.Sprintf("%s %.3f", name, float64(seq)/float64(n)))
		if name == "KV_"+cfg.Projector.Bucket {
			states = seq
		}
	}
	s.stored, s.states, s.rate = float64(total)/float64(n), float64(states)/float64(n), float64(n)/took.Seconds()
	return s
}

// ckptSample is one BenchmarkCheckpoint run: stored messages per
// touchpoint (all streams; states alone; by stream) and events/s.
type ckptSample struct {
	stored, states, rate float64
	by                   []string
}

// lastSeq is how many messages a stream ever stored (those a newer value
// of a key or a work queue's ack removed included).
func lastSeq(b *testing.B, js jetstream.JetStream, name string) uint64 {
	st, err := js.Stream(context.Background(), name)
	if err != nil {
		b.Fatalf("stream %s: %v", name, err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		b.Fatalf("stream %s: %v", name, err)
	}
	return info.State.LastSeq
}

// spread makes n events round-robin over customers (visits, orders and
// survey answers), in the past year, every one distinct.
func spread(n, customers int, now time.Time) []touchpoint.Event {
	out := make([]touchpoint.Event, 0, n)
	for i := 0; i < n; i++ {
		c := i % customers
		at := now.Add(-time.Duration(300-i%200) * 24 * time.Hour).Truncate(time.Second).Add(time.Duration(i) * time.Millisecond)
		var p touchpoint.Typed
		switch i / customers % 4 {
		case 0:
			p = touchpoint.Visit{Common: touchpoint.Common{Channel: "web"}}
		case 1, 3:
			p = touchpoint.Order{OrderID: fmt.Sprint("o", i), Status: "placed", Amount: touchpoint.Amount{Cents: 2500}, Currency: "EUR"}
		default:
			p = touchpoint.Survey{SurveyID: "nps", Score: int64(i % 11), Comment: "ok"}
		}
		e, err := touchpoint.New("bench-spread", strconv.Itoa(i), fmt.Sprintf("cust/%d", c), at, p)
		if err != nil {
			panic(err)
		}
		out = append(out, e)
	}
	return out
}
