package journeyctl_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/services/journeyctl"
)

// BenchmarkRebuildAMillionEvents measures `journeyctl rebuild warehouse`,
// `verify` and `swap` of JOURNEY_BENCH_REBUILD_EVENTS events (default
// 1 000 000) that a writer first drained from TOUCHPOINTS into ClickHouse,
// and compares the rebuild's rate with that drain's. Run with -benchtime
// 1x; figures in docs/performance.md.
func BenchmarkRebuildAMillionEvents(b *testing.B) {
	total := 1_000_000
	if v := os.Getenv("JOURNEY_BENCH_REBUILD_EVENTS"); v != "" {
		_, _ = fmt.Sscan(v, &total)
	}
	ctx := context.Background()
	url, ch, js, db := benchStores(b, 30*time.Second)
	drain := loadThroughWriter(b, url, ch, js, db, total, 10, "rb/")
	var cfg journeyctl.Config
	if err := envconfig.Process("JOURNEY_NOTHING_SET", &cfg); err != nil {
		b.Fatal(err)
	}
	cfg.NATS.URL, cfg.ClickHouse, cfg.Stream = url, ch, stream.DefaultTopology()
	run := func(args ...string) time.Duration {
		var out, errOut bytes.Buffer
		env := &journeyctl.Env{Config: cfg, Out: &out, Err: &errOut, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		t0 := time.Now()
		if code := journeyctl.Run(ctx, append([]string{"--actor", "bench", "--json"}, args...), env); code != 0 {
			b.Fatalf("journeyctl %v: exit %d: %s", args, code, errOut.String())
		}
		return time.Since(t0)
	}
	for b.Loop() {
		fill := run("rebuild", "warehouse", "--restart")
		verify := run("rebuild", "verify")
		swap := run("rebuild", "swap", "--settle", "1s")
		if n := rowCount(b, db); n != uint64(total) {
			b.Fatalf("events holds %d rows after the swap, want %d", n, total)
		}
		rate := func(d time.Duration) float64 { return float64(total) / d.Seconds() }
		b.ReportMetric(rate(drain), "events/s_writer_drain")
		b.ReportMetric(rate(fill), "events/s_rebuild_fill")
		b.ReportMetric(fill.Seconds(), "s_fill")
		b.ReportMetric(verify.Seconds(), "s_verify")
		b.ReportMetric(swap.Seconds(), "s_swap")
		b.Logf("%d events: writer drain %s (%.0f/s); rebuild fill %s (%.0f/s, %.2f× the drain), verify %s, swap %s",
			total, drain.Round(time.Millisecond), rate(drain), fill.Round(time.Millisecond), rate(fill), rate(fill)/rate(drain),
			verify.Round(time.Millisecond), swap.Round(time.Millisecond))
	}
}
