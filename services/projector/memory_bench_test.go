package projector_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/procstat"
	"github.com/klantreis/journey/pkg/touchpoint"
)

// BenchmarkProjectorMemory measures a projector process's resident memory
// per owned customer: for each size (JOURNEY_BENCH_SIZES, default
// 100000,1000000 customers, one order each, so every one has an expiry to
// schedule) a fresh broker is filled, a projector process (this test
// binary as a child, checkpoint mode JOURNEY_BENCH_CHECKPOINT, default
// 10s, the default cache of 200 000 states) drains it, and its RSS is read
// from /proc every 250 ms. It reports the peak and the RSS once drained,
// per size (median of JOURNEY_BENCH_ROUNDS, default 3, sizes alternated),
// and the slope between the smallest and the largest size: the bytes each
// further owned customer costs. JOURNEY_BENCH_GOMEMLIMIT sets the
// projector's GOMEMLIMIT; JOURNEY_BENCH_HEAP logs its heap in use once
// drained. b.N is ignored.
func BenchmarkProjectorMemory(b *testing.B) {
	sizes := []int{100_000, 1_000_000}
	if v := os.Getenv("JOURNEY_BENCH_SIZES"); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("JOURNEY_BENCH_SIZES=%q: %q is not a size", v, f)
			}
			sizes = append(sizes, n)
		}
	}
	every := "10s"
	if v := os.Getenv("JOURNEY_BENCH_CHECKPOINT"); v != "" {
		every = v
	}
	rounds := envInt("JOURNEY_BENCH_ROUNDS", 3)
	peak, drained := map[int][]float64{}, map[int][]float64{}
	for r := range rounds {
		for _, n := range sizes {
			p, d, took := memorySample(b, n, every)
			peak[n], drained[n] = append(peak[n], p), append(drained[n], d)
			b.Logf("round %d, %d customers: peak RSS %.1f MiB, drained %.1f MiB, drain %s (%.0f events/s)",
				r+1, n, p/(1<<20), d/(1<<20), took.Round(time.Second), float64(n)/took.Seconds())
		}
	}
	median := func(v []float64) float64 {
		v = slices.Clone(v)
		slices.Sort(v)
		return v[len(v)/2]
	}
	for _, n := range sizes {
		b.Logf("median, %d customers: peak RSS %.1f MiB, drained %.1f MiB (%d samples)", n, median(peak[n])/(1<<20), median(drained[n])/(1<<20), len(peak[n]))
		b.ReportMetric(median(peak[n])/(1<<20), fmt.Sprintf("peak-MiB-%d", n))
	}
	if lo, hi := sizes[0], sizes[len(sizes)-1]; hi > lo {
		slope := (median(peak[hi]) - median(peak[lo])) / float64(hi-lo)
		b.Logf("peak RSS per further owned customer (%d → %d): %.0f bytes", lo, hi, slope)
		b.ReportMetric(slope, "peak-bytes/customer")
	}
}

// memorySample drains n one-order customers with a projector process and
// returns its peak RSS, its RSS once drained, and the drain's time.
func memorySample(b *testing.B, n int, every string) (peak, drained float64, took time.Duration) {
	br := freshStreams(b)
	now := time.Now().UTC()
	events := make([]touchpoint.Event, 0, n)
	for i := range n {
		at := now.Add(-time.Duration(i%300+1) * 24 * time.Hour).Truncate(time.Second)
		e, err := touchpoint.New("bench-memory", strconv.Itoa(i), fmt.Sprintf("cust/%d", i), at,
			touchpoint.Order{OrderID: "o" + strconv.Itoa(i), Status: "placed", Amount: touchpoint.Amount{Cents: 2500}, Currency: "EUR"})
		if err != nil {
			b.Fatal(err)
		}
		events = append(events, e)
	}
	publish(b, br.js, events)
	events = nil
	cfg := br.migratedConfig(b)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	heap := filepath.Join(b.TempDir(), "heap.pprof")
	cmd.Env = append(childEnv(br, cfg, "JOURNEY_PROJECTOR_CHECKPOINT="+every, "JOURNEY_PROJECTOR_ACK_WAIT=60s"), testChildVar+"=1", testHeapVar+"="+heap)
	if v := os.Getenv("JOURNEY_BENCH_GOMEMLIMIT"); v != "" { // the projector's alone
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+v)
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	for deadline := t0.Add(30 * time.Minute); ; time.Sleep(250 * time.Millisecond) {
		u, err := procstat.Read(cmd.Process.Pid)
		if err != nil {
			b.Fatalf("projector process: %v", err)
		}
		peak = max(peak, float64(u.RSS))
		if _, done := progress(br.js, cfg.Projector.Durable); done {
			took, drained = time.Since(t0), float64(u.RSS)
			logHeap(b, cmd, heap, n)
			return peak, drained, took
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d customers not drained within 30 minutes", n)
		}
	}
}

// logHeap has the child write its heap profile (SIGUSR1) and logs its
// largest in-use allocation sites, when JOURNEY_BENCH_HEAP is set.
func logHeap(b *testing.B, cmd *exec.Cmd, path string, n int) {
	if os.Getenv("JOURNEY_BENCH_HEAP") == "" {
		return
	}
	if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("no heap profile within 30 s")
		}
	}
	out, err := exec.Command("go", "tool", "pprof", "-top", "-sample_index=inuse_space", "-nodecount=25", path).CombinedOutput()
	if err != nil {
		b.Fatalf("pprof: %v\n%s", err, out)
	}
	b.Logf("heap in use at %d customers, drained:\n%s", n, out)
}
