package journeyctl_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
)

// BenchmarkEraseOnAMillionEvents measures `journeyctl erase` of 1, 100 and
// 10 000 customers on a store of JOURNEY_BENCH_ERASE_EVENTS events
// (default 1 000 000, 10 per customer) that a writer put in TOUCHPOINTS and
// ClickHouse, and the live publish→row latency (100 events/s) with no
// erasure running and while the 10 000 are erased. Run with -benchtime 1x;
// figures in docs/privacy.md.
func BenchmarkEraseOnAMillionEvents(b *testing.B) {
	total := benchEvents("JOURNEY_BENCH_ERASE_EVENTS")
	const perCustomer, liveRate = 10, 100
	if total/perCustomer < 10101 {
		b.Fatalf("JOURNEY_BENCH_ERASE_EVENTS=%d holds %d customers; 10 101 are erased", total, total/perCustomer)
	}
	ctx := context.Background()
	url, ch, js, db := benchStores(b, 30*time.Second)
	load := loadThroughWriter(b, url, ch, js, db, total, perCustomer, "er/")
	b.Logf("store: %d events of %d customers in TOUCHPOINTS and events, drained by the writer in %s", total, total/perCustomer, load.Round(time.Second))

	cfg := ctlConfig(b, url, ch)
	next := 0
	erase := func(n int) time.Duration {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprint("er/", next)
			next++
		}
		file := filepath.Join(b.TempDir(), "ids.txt")
		if err := os.WriteFile(file, []byte(strings.Join(ids, "\n")+"\n"), 0o600); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if code, errOut := benchRun(ctx, cfg, "--json", "erase", "--from-file", file); code != 0 {
			b.Fatalf("erase %d: exit %d: %s", n, code, errOut)
		}
		return time.Since(t0)
	}
	for b.Loop() {
		quiet := liveLatencies(b, js, db, "quiet", liveRate, 10*time.Second)
		one, hundred := erase(1), erase(100)
		stop := make(chan struct{})
		took := make(chan time.Duration, 1)
		go func() {
			time.Sleep(time.Second) // live traffic first
			d := erase(10_000)
			close(stop)
			took <- d
		}()
		busy := liveLatenciesUntil(b, js, db, "busy", liveRate, liveRate*3600, stop)
		tenK := <-took
		left := rowCount(b, db)
		b.ReportMetric(one.Seconds(), "s_erase_1")
		b.ReportMetric(hundred.Seconds(), "s_erase_100")
		b.ReportMetric(tenK.Seconds(), "s_erase_10000")
		b.ReportMetric(msAt(quiet, 0.99), "p99_ms_quiet")
		b.ReportMetric(msAt(busy, 0.99), "p99_ms_erasing")
		b.Logf("erase 1: %s, 100: %s, 10 000: %s; live publish→row at %d/s: quiet p50 %.0f ms p99 %.0f ms (n=%d); during the 10 000 p50 %.0f ms p99 %.0f ms (n=%d); rows left %d",
			one.Round(time.Millisecond), hundred.Round(time.Millisecond), tenK.Round(time.Millisecond), liveRate,
			msAt(quiet, 0.5), msAt(quiet, 0.99), len(quiet), msAt(busy, 0.5), msAt(busy, 0.99), len(busy), left)
	}
}

// benchEvents is the number of events the environment variable name asks
// for, 1 000 000 when it is not set.
func benchEvents(name string) int {
	total := 1_000_000
	if v := os.Getenv(name); v != "" {
		_, _ = fmt.Sscan(v, &total)
	}
	return total
}

// loadThroughWriter starts a writer (a child process, stopped when b ends),
// publishes total visits, perCustomer per customer (prefix + number), and
// returns once the writer has stored them all: the time from the first
// publish to the last row.
func loadThroughWriter(b *testing.B, url string, ch warehouse.Config, js jetstream.JetStream, db *warehouse.DB, total, perCustomer int, prefix string) time.Duration {
	benchChild(b, benchBuild(b, "services/writer/cmd/journey-writer"), childEnv(url, ch, "JOURNEY_WRITER_ADDR=127.0.0.1:0"))
	start := time.Now()
	at := time.Now().Add(-time.Hour)
	benchPublish(b, js, total, func(i int) (touchpoint.Event, error) {
		return touchpoint.New("bench", fmt.Sprint("e-", i), fmt.Sprint(prefix, i/perCustomer), at, webVisit)
	})
	for deadline := time.Now().Add(15 * time.Minute); rowCount(b, db) < uint64(total); {
		if time.Now().After(deadline) {
			b.Fatalf("the writer stored %d of %d events in 15 minutes", rowCount(b, db), total)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}
