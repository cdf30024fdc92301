package journeyctl_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/natsserver/natstest"
	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
	"github.com/klantreis/journey/services/journeyctl"
)

// BenchmarkReplayLiveLatency measures live publish→row latency (publish
// acknowledged → row visible in ClickHouse, polled every 10 ms) at 100
// events/s for 10 s, first with no replay, then while `replay --to
// warehouse --rate 2000` re-delivers 30 000 stored events through a second
// writer (JOURNEY_WRITER_INPUT=replay) that takes turns with the live one.
// Run with -benchtime 1x; figures in docs/performance.md.
func BenchmarkReplayLiveLatency(b *testing.B) {
	const stored, liveRate, liveFor = 30000, 100, 10 * time.Second
	ctx := context.Background()
	url, ch, js, db := benchStores(b, 5*time.Second)
	writerBin := benchBuild(b, "services/writer/cmd/journey-writer")
	writerEnv := childEnv(url, ch, "JOURNEY_WRITER_ADDR=127.0.0.1:0")
	benchChild(b, writerBin, writerEnv)
	benchChild(b, writerBin, append(writerEnv, "JOURNEY_WRITER_INPUT=replay"))
	benchPublish(b, js, stored, fixtureEvents(stored))
	for deadline := time.Now().Add(2 * time.Minute); rowCount(b, db) < stored; {
		if time.Now().After(deadline) {
			b.Fatal("the live writer did not store the slice")
		}
		time.Sleep(200 * time.Millisecond)
	}
	cfg := ctlConfig(b, url, ch)

	for b.Loop() {
		quiet := liveLatencies(b, js, db, "quiet", liveRate, liveFor)
		replayDone := make(chan error, 1)
		go func() {
			if code, errOut := benchRun(ctx, cfg, "replay", "--to", "warehouse", "--rate", "2000", "--id", fmt.Sprint("lat-", time.Now().UnixNano())); code != 0 {
				replayDone <- fmt.Errorf("exit %d: %s", code, errOut)
				return
			}
			replayDone <- nil
		}()
		time.Sleep(time.Second) // the replay is under way
		busy := liveLatencies(b, js, db, "busy", liveRate, liveFor)
		if err := <-replayDone; err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(msAt(quiet, 0.5), "p50_ms_quiet")
		b.ReportMetric(msAt(quiet, 0.99), "p99_ms_quiet")
		b.ReportMetric(msAt(busy, 0.5), "p50_ms_replay")
		b.ReportMetric(msAt(busy, 0.99), "p99_ms_replay")
		b.Logf("live publish→row at %d/s: quiet p50 %.0f ms p99 %.0f ms (n=%d); during replay --rate 2000 p50 %.0f ms p99 %.0f ms (n=%d); rows %d",
			liveRate, msAt(quiet, 0.5), msAt(quiet, 0.99), len(quiet), msAt(busy, 0.5), msAt(busy, 0.99), len(busy), rowCount(b, db))
	}
}

// liveLatencies publishes live events at rate for d and returns each one's
// publish-ack → row-visible time, sorted.
func liveLatencies(b *testing.B, js jetstream.JetStream, db *warehouse.DB, tag string, rate int, d time.Duration) []time.Duration {
	return liveLatenciesUntil(b, js, db, tag, rate, rate*int(d/time.Second), nil)
}

// liveLatenciesUntil is liveLatencies for n events, or fewer when stop
// closes first (nil: never).
func liveLatenciesUntil(b *testing.B, js jetstream.JetStream, db *warehouse.DB, tag string, rate, n int, stop <-chan struct{}) []time.Duration {
	ctx := context.Background()
	source := "live-" + tag
	var mu sync.Mutex
	sent := map[string]time.Time{}
	done := make(chan struct{})
	published := 0
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for i := 0; i < n; i++ {
			select {
			case <-tick.C:
			case <-stop:
				return
			}
			ev, _ := touchpoint.New(source, fmt.Sprint(i), fmt.Sprint("live/", i%50), time.Now().Add(-time.Second), touchpoint.Visit{Common: touchpoint.Common{Channel: "web"}})
			m, _ := stream.NewFactMsg(&ev)
			if _, err := js.PublishMsg(ctx, m); err != nil {
				b.Error(err)
				return
			}
			mu.Lock()
			sent[ev.ID] = time.Now()
			published++
			mu.Unlock()
		}
	}()
	seen := map[string]time.Duration{}
	want := func() int {
		select {
		case <-done:
			mu.Lock()
			defer mu.Unlock()
			return published
		default:
			return n
		}
	}
	deadline := time.Now().Add(time.Duration(n/rate)*time.Second + time.Minute)
	for len(seen) < want() && time.Now().Before(deadline) {
		rows, err := db.Conn.Query(ctx, "SELECT id FROM events WHERE source = ?", source)
		if err != nil {
			b.Fatal(err)
		}
		now := time.Now()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				b.Fatal(err)
			}
			mu.Lock()
			at, ok := sent[id]
			mu.Unlock()
			if _, dup := seen[id]; ok && !dup {
				seen[id] = now.Sub(at)
			}
		}
		rows.Close()
		time.Sleep(10 * time.Millisecond)
	}
	<-done
	if len(seen) < want() {
		b.Fatalf("%s: %d of %d live events stored", tag, len(seen), want())
	}
	out := make([]time.Duration, 0, len(seen))
	for _, v := range seen {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

// benchStores connects to a NATS server with the topology and to a fresh
// migrated ClickHouse database, closed when b ends.
func benchStores(b *testing.B, requestTimeout time.Duration) (string, warehouse.Config, jetstream.JetStream, *warehouse.DB) {
	url, ch := natstest.URL(b), warehousetest.Config(b)
	ctx := context.Background()
	nc, js, err := stream.Connect(stream.Conn{URL: url, ReconnectWait: 100 * time.Millisecond, RequestTimeout: requestTimeout}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	if err := stream.DefaultTopology().Ensure(ctx, js); err != nil {
		b.Fatal(err)
	}
	db, err := warehouse.Open(ctx, ch)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	return url, ch, js, db
}

// msAt is the q quantile of the sorted latencies v, in milliseconds.
func msAt(v []time.Duration, q float64) float64 {
	return float64(v[int(q*float64(len(v)-1))].Microseconds()) / 1000
}

// benchPublish publishes event(0) … event(n-1) to TOUCHPOINTS with at most
// 2000 in flight (the client allows 4000) and waits for every ack.
func benchPublish(b *testing.B, js jetstream.JetStream, n int, event func(i int) (touchpoint.Event, error)) {
	for i := 0; i < n; i++ {
		ev, err := event(i)
		if err != nil {
			b.Fatal(err)
		}
		m, _ := stream.NewFactMsg(&ev)
		if _, err := js.PublishMsgAsync(m); err != nil {
			b.Fatal(err)
		}
		if i%2000 == 1999 {
			<-js.PublishAsyncComplete()
		}
	}
	<-js.PublishAsyncComplete()
}

// fixtureEvents is manyFixtures(n) as benchPublish's events.
func fixtureEvents(n int) func(i int) (touchpoint.Event, error) {
	fs := manyFixtures(n)
	return func(i int) (touchpoint.Event, error) {
		f := fs[i]
		return touchpoint.New(f.source, f.id, f.customer, f.at, payloadOf(f.kind, i))
	}
}

// benchRun runs journeyctl in-process as the actor "bench", its log
// discarded, and returns its exit code and stderr.
func benchRun(ctx context.Context, cfg journeyctl.Config, args ...string) (int, string) {
	var out, errOut bytes.Buffer
	env := &journeyctl.Env{Config: cfg, Out: &out, Err: &errOut, Log: quiet()}
	code := journeyctl.Run(ctx, append([]string{"--actor", "bench"}, args...), env)
	return code, errOut.String()
}

func rowCount(b *testing.B, db *warehouse.DB) uint64 {
	var n uint64
	if err := db.Conn.QueryRow(context.Background(), "SELECT count() FROM events").Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

func benchBuild(b *testing.B, pkg string) string {
	bin := filepath.Join(b.TempDir(), filepath.Base(pkg))
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/klantreis/journey/"+pkg).CombinedOutput(); err != nil {
		b.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

func benchChild(b *testing.B, bin string, env []string) {
	cmd := exec.Command(bin)
	cmd.Env = env
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
}
