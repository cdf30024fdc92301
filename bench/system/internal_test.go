package bench

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klantreis/journey/pkg/touchpoint"
)

func readings(start time.Time, writer, projector []int64) []sample {
	var out []sample
	for i := range writer {
		out = append(out, sample{at: start.Add(time.Duration(i) * time.Second), writer: writer[i], projector: projector[i], ok: true})
	}
	return out
}

func TestJudge(t *testing.T) {
	o := Full()
	t0 := time.Now()
	flat := []int64{5000, 9000, 4000, 8000, 5000, 9000, 4000, 8000, 5000, 9000, 4000}
	growing := []int64{0, 2000, 4000, 6000, 8000, 10000, 12000, 14000, 16000, 18000, 20000}
	for _, tc := range []struct {
		name string
		// target is 10000 unless achieved says otherwise (see below)
		achieved  float64
		w, p      []int64
		bounded   bool
		whyPrefix string
	}{
		{"saw-tooth backlog of batching consumers", 10000, flat, flat, true, ""},
		{"load fell short", 9000, flat, flat, false, "load reached"},
		{"writer falls behind", 10000, growing, flat, false, "writer backlog grows"},
		{"projector falls behind", 10000, flat, growing, false, "projector backlog grows"},
		{"ramp to the batch saw-tooth at a low rate", 500, []int64{0, 3000, 5000, 1000, 5000, 2000, 5000, 1000, 5000, 2000, 5000}, flat, true, ""},
		{"draining a backlog left by the step before", 10000, []int64{40000, 36000, 32000, 28000, 24000, 20000, 16000, 12000, 8000, 4000, 0}, flat, true, ""},
	} {
		target := 10000.0
		if tc.achieved < 1000 {
			target = tc.achieved
		}
		st := Step{Target: target, Achieved: tc.achieved}
		judge(&st, readings(t0, tc.w, tc.p), o)
		if st.Bounded != tc.bounded || !strings.HasPrefix(st.Why, tc.whyPrefix) {
			t.Errorf("%s: bounded %v (%q), want %v (%q...)", tc.name, st.Bounded, st.Why, tc.bounded, tc.whyPrefix)
		}
	}
	// A jump that the slope over the last three quarters misses is still
	// caught by the total growth (2s of load = 20000).
	jump := []int64{0, 0, 0, 30000, 30000, 30000, 30000, 30000, 30000, 30000, 30000}
	st := Step{Target: 10000, Achieved: 10000}
	judge(&st, readings(t0, jump, flat), o)
	if st.Bounded {
		t.Errorf("a backlog that jumped by 3s of load was judged bounded (slope %.0f)", st.WriterGrowth)
	}
	// High teeth late in a short window, the backlog back near zero at
	// the end (seen in a 10 s window at 2 883/s): the least-squares slope
	// alone calls it growth, the low points do not move.
	var teeth []int64
	for i := range 40 {
		v := int64(100) // drained to the same low point every third reading
		if i%3 != 0 {
			v = int64(150 + 12*i*i)
		}
		teeth = append(teeth, v)
	}
	teeth = append(teeth, 120)
	var xs, ys []float64
	for i, v := range teeth[len(teeth)/4:] {
		xs, ys = append(xs, float64(i)), append(ys, float64(v))
	}
	if g, se := SlopeSE(xs, ys); g-2*se <= 0.02*2883 {
		t.Fatalf("the teeth example no longer fools the fit (slope %.0f±%.0f): pick another", g, se)
	}
	st = Step{Target: 2883, Achieved: 2883}
	judge(&st, readings(t0, teeth, teeth), o)
	if !st.Bounded {
		t.Errorf("saw-tooth that ends near zero judged not bounded: %s", st.Why)
	}
	st = Step{Target: 10000, Achieved: 10000}
	judge(&st, readings(t0, []int64{1}, []int64{1}), o)
	if st.Bounded {
		t.Error("bounded with a single reading")
	}
}

func testReport() *Report {
	ms := time.Millisecond
	r := &Report{
		Mode: "short", Started: time.Date(2026, 11, 28, 15, 0, 0, 0, time.UTC), Duration: 170 * time.Second, Cores: 2,
		Commit: "abc1234", CHVersion: "18.16", ceilingN: 20000,
		Ceilings: []Ceiling{{Publish: 100000, Pull: 200000, Ordered: 400000, Insert: 80000}},
		Ceiling:  Ceiling{Publish: 100000, Pull: 200000, Ordered: 400000, Insert: 80000},
		Sustained: map[Path]*Sustained{
			ViaPublisher: {Path: ViaPublisher, Max: 20000, Candidate: 22727, Window: time.Minute, CoarseWindow: 4 * time.Second,
				Coarse: []Step{{Phase: "coarse", Window: 4 * time.Second, Target: 22727, Achieved: 22727, Bounded: true},
					{Phase: "coarse", Window: 4 * time.Second, Target: 30000, Achieved: 24000, Why: "load reached 24000 of 30000 events/s"}},
				Runs: []SearchRun{{Max: 20000, Steps: []Step{
					{Phase: "run 1", Window: time.Minute, Target: 22727, Achieved: 22700, Aborted: true, Elapsed: 25 * time.Second, Why: "projector backlog grows 900±10/s, +40000 (stopped after 25s)"},
					{Phase: "run 1", Window: time.Minute, Target: 20000, Achieved: 20000, Bounded: true}}}}},
			ViaCollector: {Path: ViaCollector, Max: 10000, Window: time.Minute, CoarseWindow: 4 * time.Second, Runs: []SearchRun{{Max: 10000}},
				Note: "1 of 3 runs: the time budget left no room for more"},
		},
		Latency: []*LatencyResult{{Rate: 10000, Label: "fixed", Achieved: 9990, Windows: 3,
			Visible: Dist{N: 600, P50: 150 * ms, P99: 420 * ms, Max: 480 * ms}, State: Dist{N: 600, P50: 20 * ms, P99: 90 * ms, Max: 95 * ms}}},
		CPUPerMillion: map[string]float64{ProcNATS: 10, ProcWriter: 5, ProcProjector: 15, ProcClickHouse: 20, ProcBench: 8, ProcCollector: 12},
		Work:          Work{MsgsPerEvent: map[string]float64{"TOUCHPOINTS": 1, "KV_journey_customers": 0.5, "DERIVED": 0.25}, InsertsPerSec: 120, RowsPerInsert: 300, EventsPerInsert: 166.7, MergedPerEvent: 3, SelectsPerSec: 4},
		Soak: &SoakResult{Rate: 10000, Achieved: 9999, Duration: time.Minute, Published: 600000, Rows: 600000, Uniq: 600000, StreamMsgs: 600000,
			RSSStart: map[string]int64{ProcWriter: 30 << 20, ProcNATS: 100 << 20, ProcProjector: 100 << 20},
			RSSEnd:   map[string]int64{ProcWriter: 32 << 20, ProcNATS: 400 << 20, ProcProjector: 300 << 20},
			RSS: []RSSReading{
				{At: 30 * time.Second, RSS: map[string]int64{ProcWriter: 31 << 20, ProcNATS: 250 << 20, ProcProjector: 290 << 20}},
				{At: 40 * time.Second, RSS: map[string]int64{ProcWriter: 31 << 20, ProcNATS: 300 << 20, ProcProjector: 295 << 20}},
			},
			Bounded: true, Parts: 12, EventParts: 5, CPUPerMillion: map[string]float64{ProcNATS: 98, ProcProjector: 80.04}},
		Chart: Chart{Title: "t", Left: Axis{Series: []Series{{Name: "a", Color: "red", Points: []Point{{0, 1}, {1, 2}}}}}},
	}
	return r
}

func TestWriteMarkdown(t *testing.T) {
	var b strings.Builder
	if err := testReport().WriteMarkdown(&b, "performance-system/x.svg"); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"## System benchmark, 2026-11-28 15:00 UTC (short mode)",
		"Commit `abc1234`, 2 cores, ClickHouse 18.16",
		"| sustained via pkg/publish ÷ raw JetStream publish | 0.20 |",
		"| sustained via pkg/publish ÷ raw ClickHouse insert | 0.25 |",
		"| sustained via pkg/publish ÷ slowest raw stage | 0.25 |",
		"| sustained via collector ÷ via pkg/publish | 0.50 |",
		"| JetStream async publish (4096 in flight, every ack awaited) | 100 000/s | 100 000 |",
		"| pkg/publish | 20 000/s | 20 000 | 1m0s | 22 727/s (4s steps) |",
		"| collector (HTTP batches of 100) | 10 000/s | 10 000 | 1m0s | 0/s (4s steps) |",
		"Runs made: via collector, 1 of 3 runs: the time budget left no room for more.",
		"| publisher | coarse | 30 000 | 4s | 24 000 | 0 | 0 | false | load reached 24000 of 30000 events/s |",
		"| publisher | run 1 | 22 727 | 25s of 1m0s | 22 700 | 0 | 0 | false | projector backlog grows 900±10/s, +40000 (stopped after 25s) |",
		"| publisher | run 1 | 20 000 | 1m0s | 20 000 | 0 | 0 | true |  |",
		"| row visible in ClickHouse | 150 ms | 420 ms | 480 ms | 600 |",
		"- CPU seconds per million events over the soak and its drain: nats 98.0, projector 80.0\n",
		"| derived event published | – | – | – | 0 |",
		// nats + clickhouse + writer + projector = 50 s per M = 20k/s per core
		"| **system without collector and load** | **50.0** (20 000 events/s per core) | 0.0 (– events/s per core) |",
		"| projector | 15.0 | – |",
		"**Lost: 0, duplicated: 0**",
		"NATS stores **1.75 messages** per touchpoint (DERIVED 0.25, KV_journey_customers 0.50, TOUCHPOINTS 1.00); ClickHouse takes **120 insert queries a second**, 300 rows each on average (166.7 touchpoints per insert query), merges 3.0 rows per touchpoint in the background and answers 4 select queries a second",
		"| writer | 30 MiB | 31 MiB | 31 MiB | 32 MiB | flat |",
		"| nats | 100 MiB | 250 MiB | 300 MiB | 400 MiB | growing |",
		"| projector | 100 MiB | 290 MiB | 295 MiB | 300 MiB | levelled off |",
		"**flat**: writer; **grew, then levelled off** (flat in the last third): projector; **still growing at the end**: nats (+100 MiB in the last third)",
		"![Throughput and p99 latency over the soak](performance-system/x.svg)",
		"Above the sustained maximum via publisher, the projector's backlog grew (1 of 1 runs).",
		"Per million events at the sustained maximum the system spends 50.0 CPU-seconds (nats 20%, clickhouse 40%, writer 10%, projector 30%); the largest consumer is clickhouse.",
		// 2 cores x 1e6 / (50 + 8 for the load) = 34 483/s; 20 000 is 58% of it.
		"2 cores fully busy would carry at most 34 483/s; the sustained maximum via pkg/publish is 58% of that, so the run is mostly CPU-bound",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q\n%s", want, md)
		}
	}
}

func TestAppendToKeepsEarlierSections(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "perf.md")
	r := testReport()
	chart1, err := r.AppendTo(path)
	if err != nil {
		t.Fatal(err)
	}
	r2 := testReport()
	r2.Started = r.Started.Add(time.Hour)
	r2.Commit = "def5678"
	chart2, err := r2.AppendTo(path)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	if strings.Count(s, "# System performance") != 1 {
		t.Error("the header is not there exactly once")
	}
	i1, i2 := strings.Index(s, "`abc1234`"), strings.Index(s, "`def5678`")
	if i1 < 0 || i2 < i1 {
		t.Errorf("want the first run's section before the second's\n%s", s)
	}
	for _, c := range []string{chart1, chart2} {
		b, err := os.ReadFile(c)
		if err != nil || !strings.HasPrefix(string(b), "<svg") {
			t.Errorf("chart %s: %v", c, err)
		}
		rel, _ := filepath.Rel(dir, c)
		if !strings.Contains(s, "]("+filepath.ToSlash(rel)+")") {
			t.Errorf("the document does not link %s", rel)
		}
	}
	if chart1 == chart2 {
		t.Error("two runs share one chart file")
	}
}

func TestPace(t *testing.T) {
	gen := newGenerator(1, 100)
	ctx := context.Background()
	var times []time.Time
	n, perSec, elapsed, err := pace(ctx, 2000, 1500*time.Millisecond, gen, func(e touchpoint.Event, at time.Time) error {
		if e.ID == "" || !e.Time.Equal(at.UTC().Truncate(time.Millisecond)) {
			t.Fatalf("event %q stamped %s, sent at %s", e.ID, e.Time, at)
		}
		times = append(times, at)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A fast sink gets exactly rate x duration, spread over the window.
	if n != 3000 || len(times) != 3000 {
		t.Errorf("sent %d, want 3000", n)
	}
	if elapsed < 1500*time.Millisecond {
		t.Errorf("elapsed %s, shorter than the window", elapsed)
	}
	if perSec[0] < 1500 || perSec[0] > 2500 || perSec[0]+perSec[1] != n {
		t.Errorf("per second %v, want about 2000 in the first second", perSec)
	}
	if d := times[1500].Sub(times[0]); d < 500*time.Millisecond {
		t.Errorf("half the events went out in %s: not paced", d)
	}

	// A sink that takes 1ms per event cannot exceed about 1000/s.
	n, _, elapsed, err = pace(ctx, 5000, time.Second, gen, func(touchpoint.Event, time.Time) error {
		time.Sleep(time.Millisecond)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := float64(n) / elapsed.Seconds(); r > 1100 {
		t.Errorf("a 1ms sink achieved %.0f/s", r)
	}
}

func TestSharedMachineWarning(t *testing.T) {
	r := testReport()
	var b strings.Builder
	if err := r.WriteMarkdown(&b, ""); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "Other processes used") {
		t.Error("warning without other load")
	}
	r.OtherLoad = 0.62
	b.Reset()
	if err := r.WriteMarkdown(&b, ""); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "**Other processes used 62% of the machine's CPU time during this run**") {
		t.Errorf("no warning for a shared machine:\n%s", b.String())
	}
}

func TestSearchWorkUsesHighestBoundedSteps(t *testing.T) {
	step := func(target float64, bounded bool, tp, kv, ins, rows uint64) Step {
		return Step{Target: target, Bounded: bounded, Elapsed: 10 * time.Second, CHInserts: ins, CHRows: rows,
			Stored: map[string]uint64{"TOUCHPOINTS": tp, "KV_journey_customers": kv}}
	}
	s := &Sustained{Runs: []SearchRun{
		{Steps: []Step{step(1000, true, 10000, 1, 1, 1), step(2000, true, 20000, 10000, 100, 20000), step(3000, false, 30000, 0, 1, 1)}},
		{Steps: []Step{step(2000, true, 20000, 12000, 200, 20000)}},
		{Steps: []Step{step(2000, true, 20000, 8000, 50, 20000)}},
		{Steps: []Step{step(2000, false, 20000, 99999, 1, 1)}}, // nothing bounded: ignored
	}}
	w := searchWork(s)
	if w.MsgsPerEvent["TOUCHPOINTS"] != 1 || w.MsgsPerEvent["KV_journey_customers"] != 0.5 {
		t.Errorf("messages per event %v, want TOUCHPOINTS 1, KV 0.5 (median of 0.5, 0.6, 0.4)", w.MsgsPerEvent)
	}
	// Inserts a second: 10, 20, 5 -> 10; rows per insert 200, 100, 400 -> 200.
	if w.InsertsPerSec != 10 || w.RowsPerInsert != 200 || w.EventsPerInsert != 200 {
		t.Errorf("work %+v, want 10 inserts/s, 200 rows and 200 events per insert", w)
	}
}

// threshold is a system that holds every rate up to limit and no rate
// above it; it records the rates tried.
type threshold struct {
	limit float64
	tried []float64
}

func (th *threshold) try(rate float64) (bool, error) {
	th.tried = append(th.tried, rate)
	return rate <= th.limit, nil
}

func TestWalk(t *testing.T) {
	for _, tc := range []struct {
		name          string
		limit, start  float64
		bisect        int
		wantOK, wantB float64
		wantSteps     int
	}{
		// 1000 ok, 1500 ok, 2250 bad; bisect 1875 ok, 2062.5 bad.
		{"up then bisect", 1900, 1000, 2, 1875, 2062.5, 5},
		// 9000 bad, 6000 bad, 4000 ok; bisect 5000 bad, 4500 bad.
		{"down then bisect", 4200, 9000, 2, 4000, 4500, 5},
		// Nothing is bounded in 6 steps: it keeps walking down, up to 9.
		{"keeps walking down", 400, 9000, 2, 9000 / 1.5 / 1.5 / 1.5 / 1.5 / 1.5 / 1.5 / 1.5 / 1.5, 9000 / 1.5 / 1.5 / 1.5 / 1.5 / 1.5 / 1.5 / 1.5, 9},
		{"nothing ever bounded", 1, 9000, 2, 0, 9000 / math.Pow(1.5, 8), 9},
	} {
		th := &threshold{limit: tc.limit}
		ok, bad, err := walk(tc.start, 1.5, tc.bisect, 6, 9, th.try)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(ok-tc.wantOK) > 1e-6 || math.Abs(bad-tc.wantB) > 1e-6 || len(th.tried) != tc.wantSteps {
			t.Errorf("%s: ok %.1f bad %.1f after %v; want ok %.1f bad %.1f in %d steps", tc.name, ok, bad, th.tried, tc.wantOK, tc.wantB, tc.wantSteps)
		}
	}
	// A failing step ends the walk with its error.
	boom := errors.New("system died")
	_, _, err := walk(1000, 1.5, 2, 6, 9, func(float64) (bool, error) { return false, boom })
	if !errors.Is(err, boom) {
		t.Errorf("err %v, want %v", err, boom)
	}
}

func TestLadder(t *testing.T) {
	always := func() bool { return true }
	// The candidate holds: one window.
	th := &threshold{limit: 5000}
	if got, _ := ladder(5000, 0.88, 3, always, th.try); got != 5000 || len(th.tried) != 1 {
		t.Errorf("held %.0f after %v, want 5000 at once", got, th.tried)
	}
	// 5000 and 4400 fail, 3872 holds.
	th = &threshold{limit: 4000}
	if got, _ := ladder(5000, 0.88, 3, always, th.try); math.Abs(got-3872) > 1e-6 || len(th.tried) != 3 {
		t.Errorf("held %.0f after %v, want 3872 on the third window", got, th.tried)
	}
	// Nothing holds within the windows allowed: 0, never an unconfirmed rate.
	th = &threshold{limit: 1000}
	if got, _ := ladder(5000, 0.88, 3, always, th.try); got != 0 || len(th.tried) != 3 {
		t.Errorf("held %.0f after %v, want 0 after 3 windows", got, th.tried)
	}
	// The budget stops the walk down after the first window.
	th = &threshold{limit: 1000}
	if got, _ := ladder(5000, 0.88, 3, func() bool { return false }, th.try); got != 0 || len(th.tried) != 1 {
		t.Errorf("held %.0f after %v, want 0 after one window", got, th.tried)
	}
}

func TestMedianSettled(t *testing.T) {
	for _, tc := range []struct {
		maxes []float64
		want  bool
	}{
		{nil, false},
		{[]float64{4000}, false},
		{[]float64{4000, 4000}, true},  // a third run cannot move the median
		{[]float64{4000, 3520}, false}, // it can
		{[]float64{0, 0}, false},       // nothing held: keep trying
	} {
		if got := medianSettled(tc.maxes, 3); got != tc.want {
			t.Errorf("medianSettled(%v, 3) = %v, want %v", tc.maxes, got, tc.want)
		}
	}
}

func TestDoomed(t *testing.T) {
	o := Full()
	t0 := time.Now()
	window := time.Minute
	ramp := func(n int, from, step int64) []int64 {
		out := make([]int64, n)
		for i := range out {
			out[i] = from + int64(i)*step
		}
		return out
	}
	flat := func(n int) []int64 {
		out := make([]int64, n)
		for i := range out {
			out[i] = 5000 + 4000*int64(i%2)
		}
		return out
	}
	// At 5000/s the allowance is 10000 events (2s of load), the slope
	// limit 100/s.
	for _, tc := range []struct {
		name    string
		w, p    []int64
		elapsed time.Duration
		want    bool
	}{
		{"steady saw-tooth", flat(30), flat(30), 30 * time.Second, false},
		{"growing, but too early to tell", ramp(15, 0, 1500), flat(15), 15 * time.Second, false},
		{"writer grows 1500/s for 30s", ramp(30, 0, 1500), flat(30), 30 * time.Second, true},
		{"projector grows 1500/s for 30s", flat(30), ramp(30, 0, 1500), 30 * time.Second, true},
		// A trend, but not yet above the total allowance: hold on.
		{"slow growth below the allowance", ramp(30, 0, 200), flat(30), 30 * time.Second, false},
	} {
		got, why := doomed(readings(t0, tc.w, tc.p), 5000, tc.elapsed, window, o)
		if got != tc.want {
			t.Errorf("%s: doomed %v (%s), want %v", tc.name, got, why, tc.want)
		}
	}
}

func TestRSSVerdict(t *testing.T) {
	const m = 1 << 20
	for _, tc := range []struct {
		start, third, end int64
		want              string
	}{
		{40 * m, 42 * m, 45 * m, verdictFlat},
		{167 * m, 2000 * m, 2950 * m, verdictGrowing},
		{76 * m, 1200 * m, 1230 * m, verdictLevelled},
		{200 * m, 210 * m, 215 * m, verdictFlat},
		{200 * m, 210 * m, 230 * m, verdictGrowing},
	} {
		if got := rssVerdict(tc.start, tc.third, tc.end); got != tc.want {
			t.Errorf("rssVerdict(%d, %d, %d MiB) = %s, want %s", tc.start/m, tc.third/m, tc.end/m, got, tc.want)
		}
	}
}

func TestPerMillion(t *testing.T) {
	got := perMillion(map[string]time.Duration{ProcNATS: 3 * time.Second, ProcWriter: 500 * time.Millisecond}, 2_000_000)
	if got[ProcNATS] != 1.5 || got[ProcWriter] != 0.25 || len(got) != 2 {
		t.Fatalf("perMillion = %v, want nats 1.5, writer 0.25", got)
	}
	if got := perMillion(map[string]time.Duration{ProcNATS: time.Second}, 0); len(got) != 0 {
		t.Fatalf("perMillion of no events = %v, want none (not a division by zero)", got)
	}
}
