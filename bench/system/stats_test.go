package bench_test

import (
	"math"
	"testing"
	"time"

	"github.com/klantreis/journey/bench/system"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{10, 10, 1000}, 10}, // one run off by 100x does not move it
	} {
		in := append([]float64(nil), tc.in...)
		if got := bench.Median(tc.in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		for i := range in {
			if in[i] != tc.in[i] {
				t.Fatalf("Median reordered its input: %v", tc.in)
			}
		}
	}
	if !math.IsNaN(bench.Median(nil)) {
		t.Error("Median(nil) is not NaN")
	}
}

func TestPercentileNearestRank(t *testing.T) {
	xs := make([]float64, 100)
	for i := range xs {
		xs[i] = float64(100 - i) // 100..1, reversed
	}
	for _, tc := range []struct{ p, want float64 }{{50, 50}, {99, 99}, {100, 100}, {1, 1}, {0.1, 1}} {
		if got := bench.Percentile(xs, tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
	// Ten values: p99 is the largest, never an interpolation.
	ten := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if got := bench.Percentile(ten, 99); got != 10 {
		t.Errorf("p99 of 1..10 = %v, want 10", got)
	}
	if got := bench.Percentile(ten, 50); got != 5 {
		t.Errorf("p50 of 1..10 = %v, want 5", got)
	}
}

func TestSummarizeAndMedianDist(t *testing.T) {
	ms := time.Millisecond
	var ds []time.Duration
	for i := 200; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*ms)
	}
	d := bench.Summarize(ds)
	if d.N != 200 || d.P50 != 100*ms || d.P99 != 198*ms || d.Max != 200*ms {
		t.Errorf("Summarize = %+v, want N 200, p50 100ms, p99 198ms, max 200ms", d)
	}
	if (bench.Summarize(nil) != bench.Dist{}) {
		t.Error("Summarize(nil) is not zero")
	}
	m := bench.MedianDist([]bench.Dist{
		{N: 10, P50: 1 * ms, P99: 10 * ms, Max: 100 * ms},
		{N: 20, P50: 3 * ms, P99: 30 * ms, Max: 300 * ms},
		{N: 30, P50: 2 * ms, P99: 20 * ms, Max: 200 * ms},
		{}, // a window without samples does not count
	})
	want := bench.Dist{N: 60, P50: 2 * ms, P99: 20 * ms, Max: 200 * ms}
	if m != want {
		t.Errorf("MedianDist = %+v, want %+v", m, want)
	}
}

func TestSlope(t *testing.T) {
	xs := []float64{0, 1, 2, 3, 4}
	if got := bench.Slope(xs, []float64{5, 7, 9, 11, 13}); math.Abs(got-2) > 1e-9 {
		t.Errorf("slope of 2x+5 = %v", got)
	}
	if got := bench.Slope(xs, []float64{3, 3, 3, 3, 3}); got != 0 {
		t.Errorf("slope of a constant = %v", got)
	}
	// Noise around a flat line has a slope near zero.
	if got := bench.Slope(xs, []float64{100, 0, 100, 0, 100}); math.Abs(got) > 1e-9 {
		t.Errorf("slope of symmetric noise = %v", got)
	}
	if got := bench.Slope([]float64{1}, []float64{1}); got != 0 {
		t.Errorf("slope of one point = %v", got)
	}
}

func TestSlopeSE(t *testing.T) {
	xs := []float64{0, 1, 2, 3, 4, 5, 6, 7}
	// A steady climb: slope 100, no error.
	climb := []float64{0, 100, 200, 300, 400, 500, 600, 700}
	if s, se := bench.SlopeSE(xs, climb); math.Abs(s-100) > 1e-9 || se > 1e-9 {
		t.Errorf("climb: slope %v ± %v, want 100 ± 0", s, se)
	}
	// A saw-tooth of batches: its fitted slope is not small, but its
	// error is larger, so it is not a trend.
	saw := []float64{0, 5000, 0, 5000, 0, 5000, 0, 5000}
	s, se := bench.SlopeSE(xs, saw)
	if s <= 0 || s-2*se > 0 {
		t.Errorf("saw-tooth: slope %v ± %v, want a positive slope within two errors of 0", s, se)
	}
	// Hand-computed: ys = 1, 3, 2 over 0, 1, 2: slope 0.5, residuals
	// -0.5, 1, -0.5 (rss 1.5), se = sqrt(1.5/1)/sqrt(2).
	s, se = bench.SlopeSE([]float64{0, 1, 2}, []float64{1, 3, 2})
	if math.Abs(s-0.5) > 1e-9 || math.Abs(se-math.Sqrt(1.5)/math.Sqrt(2)) > 1e-9 {
		t.Errorf("slope %v ± %v, want 0.5 ± %v", s, se, math.Sqrt(1.5)/math.Sqrt(2))
	}
}
