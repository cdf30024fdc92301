package bench

import (
	"math"
	"slices"
	"time"
)

// Median of xs (the mean of the two middle values for an even count); NaN
// for none. Every figure of the report is the median of its runs: on a
// shared machine one run can be off by a third, the median of three rarely.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Percentile is the nearest-rank percentile p (0 < p <= 100) of xs: the
// smallest value with at least p% of the values at or below it, so p99 of
// 100 samples is the 99th smallest and never an interpolated value that was
// not measured. NaN for none.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[rank(len(s), p)]
}

func rank(n int, p float64) int {
	r := int(math.Ceil(p / 100 * float64(n)))
	return min(max(r, 1), n) - 1
}

// Dist summarises latencies.
type Dist struct {
	N             int
	P50, P99, Max time.Duration
}

// Summarize returns the nearest-rank p50, p99 and the maximum of ds.
func Summarize(ds []time.Duration) Dist {
	if len(ds) == 0 {
		return Dist{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	return Dist{N: n, P50: s[rank(n, 50)], P99: s[rank(n, 99)], Max: s[n-1]}
}

// MedianDist is the element-wise median of several runs' summaries (each
// of p50, p99 and max separately); N is the total sample count.
func MedianDist(ds []Dist) Dist {
	var p50, p99, mx []float64
	out := Dist{}
	for _, d := range ds {
		if d.N == 0 {
			continue
		}
		out.N += d.N
		p50 = append(p50, float64(d.P50))
		p99 = append(p99, float64(d.P99))
		mx = append(mx, float64(d.Max))
	}
	if out.N == 0 {
		return out
	}
	out.P50, out.P99, out.Max = time.Duration(Median(p50)), time.Duration(Median(p99)), time.Duration(Median(mx))
	return out
}

// SlopeSE is the least-squares slope of ys over xs and its standard error
// (0 for fewer than three points). A saw-tooth without a trend has a large
// error, a steady climb a small one.
func SlopeSE(xs, ys []float64) (slope, se float64) {
	slope = Slope(xs, ys)
	n := len(xs)
	if n < 3 || len(ys) != n {
		return slope, 0
	}
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	mx /= float64(n)
	my /= float64(n)
	var sxx, rss float64
	for i := range xs {
		sxx += (xs[i] - mx) * (xs[i] - mx)
	}
	if sxx == 0 {
		return slope, 0
	}
	b := my - slope*mx
	for i := range xs {
		r := ys[i] - (b + slope*xs[i])
		rss += r * r
	}
	return slope, math.Sqrt(rss/float64(n-2)) / math.Sqrt(sxx)
}

// Slope is the least-squares slope of ys over xs (units of y per unit of
// x); 0 for fewer than two distinct xs.
func Slope(xs, ys []float64) float64 {
	n := float64(len(xs))
	if len(xs) < 2 || len(xs) != len(ys) {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}
