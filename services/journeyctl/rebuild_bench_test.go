package journeyctl_test

import (
	"context"
	"testing"
	"time"
)

// BenchmarkRebuildAMillionEvents measures `journeyctl rebuild warehouse`,
// `verify` and `swap` of JOURNEY_BENCH_REBUILD_EVENTS events (default
// 1 000 000) that a writer first drained from TOUCHPOINTS into ClickHouse,
// and compares the rebuild's rate with that drain's. Run with -benchtime
// 1x; figures in docs/performance.md.
func BenchmarkRebuildAMillionEvents(b *testing.B) {
	total := benchEvents("JOURNEY_BENCH_REBUILD_EVENTS")
	ctx := context.Background()
	url, ch, js, db := benchStores(b, 30*time.Second)
	drain := loadThroughWriter(b, url, ch, js, db, total, 10, "rb/")
	cfg := ctlConfig(b, url, ch)
	run := func(args ...string) time.Duration {
		t0 := time.Now()
		if code, errOut := benchRun(ctx, cfg, append([]string{"--json"}, args...)...); code != 0 {
			b.Fatalf("journeyctl %v: exit %d: %s", args, code, errOut)
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
