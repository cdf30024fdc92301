package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/klantreis/journey/internal/procstat"
	"github.com/klantreis/journey/pkg/ops"
)

// send runs one paced window of load along path.
func send(ctx context.Context, sys *system, gen *generator, path Path, rate float64, dur time.Duration, lat *latency, sampleEvery int) (loadResult, error) {
	if path == ViaCollector {
		return runCollector(ctx, sys, gen, rate, dur, sys.env.opts.CollectorWorkers)
	}
	return runPublisher(ctx, sys, gen, rate, dur, lat, sampleEvery)
}

// monitorEvery is the monitor's interval: ten readings per step at least.
func (o Options) monitorEvery() time.Duration {
	return min(time.Second, max(o.StepWindow/10, 100*time.Millisecond))
}

// judge decides whether a step's backlogs stayed bounded: the load reached
// 95% of its target, and neither backlog grew, as a trend nor in total.
// The trend is judged over the step after its first quarter: it fails
// when the least-squares slope is above MaxGrowth of the rate by more
// than two standard errors and the backlog's low point rose as fast (see
// [troughSlope]). Batching consumers make their backlog a saw-tooth: its
// readings are not independent, so the standard error alone understates
// the noise, and a few high teeth late in a short window tilted the fit
// of a backlog that ended near zero. The total is
// the change from the first to the last reading, at most MaxLag worth of
// load.
func judge(st *Step, ss []sample, o Options) {
	st.Bounded = true
	fail := func(why string) {
		if st.Bounded {
			st.Bounded, st.Why = false, why
		}
	}
	if st.Achieved < 0.95*st.Target {
		fail(fmt.Sprintf("load reached %.0f of %.0f events/s", st.Achieved, st.Target))
	}
	if len(ss) < 3 {
		fail("too few backlog readings")
		return
	}
	first, last := ss[0], ss[len(ss)-1]
	st.Writer, st.Projector = last.writer, last.projector
	st.StartedWithBacklog = first.writer + first.projector
	bs := seriesOf(ss)
	base := bs.base
	xs, wy, py := bs.xs, bs.writer, bs.projector
	var wse, pse float64
	st.WriterGrowth, wse = SlopeSE(xs, wy)
	st.ProjectorGrowth, pse = SlopeSE(xs, py)
	lim, allow := o.growthLimits(st.Target)
	switch {
	case st.WriterGrowth-2*wse > lim && troughSlope(xs, wy) > lim:
		fail(fmt.Sprintf("writer backlog grows %.0f±%.0f/s", st.WriterGrowth, wse))
	case st.ProjectorGrowth-2*pse > lim && troughSlope(xs, py) > lim:
		fail(fmt.Sprintf("projector backlog grows %.0f±%.0f/s", st.ProjectorGrowth, pse))
	case float64(last.writer-base.writer) > allow:
		fail(fmt.Sprintf("writer backlog grew by %d", last.writer-base.writer))
	case float64(last.projector-base.projector) > allow:
		fail(fmt.Sprintf("projector backlog grew by %d", last.projector-base.projector))
	}
}

// backlogSeries is what the backlog tests read: the readings after the
// first quarter (the ramp from a drained system to the consumers' steady
// saw-tooth, not growth), in seconds since the first reading.
type backlogSeries struct {
	base, last            sample
	xs, writer, projector []float64
}

func seriesOf(ss []sample) backlogSeries {
	from := ss[len(ss)/4:]
	bs := backlogSeries{base: from[0], last: from[len(from)-1],
		xs: make([]float64, len(from)), writer: make([]float64, len(from)), projector: make([]float64, len(from))}
	for i, s := range from {
		bs.xs[i] = s.at.Sub(ss[0].at).Seconds()
		bs.writer[i], bs.projector[i] = float64(s.writer), float64(s.projector)
	}
	return bs
}

// growthLimits are the backlog tests' thresholds at target events/s: the
// trend a backlog may have (events/s) and how much it may grow in total.
func (o Options) growthLimits(target float64) (lim, allow float64) {
	return o.MaxGrowth * target, max(o.MaxLag.Seconds()*target, float64(o.BacklogFloor))
}

func cpuDelta(u0, u1 map[string]procstat.Usage) map[string]time.Duration {
	out := map[string]time.Duration{}
	for name, b := range u1 {
		if a, ok := u0[name]; ok {
			out[name] = b.CPU - a.CPU
		}
	}
	return out
}

// perMillion is each process's CPU seconds per million of n events.
func perMillion(cpu map[string]time.Duration, n uint64) map[string]float64 {
	out := map[string]float64{}
	if n == 0 {
		return out
	}
	for p, d := range cpu {
		out[p] = d.Seconds() / float64(n) * 1e6
	}
	return out
}

// settle waits until the latency samples have resolved, at most limit.
func settle(ctx context.Context, lat *latency, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for lat.pending() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
}

func (o Options) sampleEvery(rate float64) int {
	return max(1, int(rate/o.SampleRate))
}

// latencyAt measures latency at rate through pkg/publish: a warm-up, then
// runs windows on one system, each with its own samples.
func latencyAt(ctx context.Context, env *environment, rate float64, runs int, window time.Duration) (*LatencyResult, error) {
	o := env.opts
	res := &LatencyResult{Rate: rate, CPUPerMillion: map[string]float64{}}
	sys, err := env.startSystem(ctx, true)
	if err != nil {
		return nil, err
	}
	defer sys.stop()
	gen := newGenerator(env.nextSeed(), o.Customers)
	lat := newLatency()
	stop, err := lat.start(ctx, sys, o.PollInterval)
	if err != nil {
		return nil, err
	}
	defer stop()
	if _, err := runPublisher(ctx, sys, gen, rate, min(3*time.Second, window), nil, 0); err != nil && !errors.Is(err, errNotStored) {
		return nil, err
	}
	var vis, st, der, api []Dist
	var achieved []float64
	cpu := map[string][]float64{}
	for i := range runs {
		lat.reset()
		u0 := sys.usage()
		r, err := runPublisher(ctx, sys, gen, rate, window, lat, o.sampleEvery(rate))
		if err != nil && !errors.Is(err, errNotStored) {
			return nil, err
		}
		if err != nil {
			env.log.Warn("latency window: events not stored", "rate", int(rate), "err", err)
			res.NotStored += r.failed
		}
		// Samples still pending after this are the overloaded rate's:
		// waiting longer only stretches the phase.
		settle(ctx, lat, min(5*time.Second, max(2*time.Second, window)))
		u1 := sys.usage()
		if err := sys.alive(); err != nil {
			return nil, err
		}
		l := lat.results()
		vis, st, der = append(vis, Summarize(l.visible)), append(st, Summarize(l.state)), append(der, Summarize(l.derived))
		api = append(api, Summarize(l.api))
		achieved = append(achieved, r.rate())
		for name, d := range cpuDelta(u0, u1) {
			if r.accepted > 0 {
				cpu[name] = append(cpu[name], d.Seconds()/float64(r.accepted)*1e6)
			}
		}
		env.log.Info("latency window", "rate", int(rate), "run", i+1, "achieved", int(r.rate()),
			"visible_p99", vis[i].P99, "state_p99", st[i].P99, "api_p99", api[i].P99, "derived_p99", der[i].P99, "samples", vis[i].N)
	}
	res.Visible, res.State, res.Derive, res.API = MedianDist(vis), MedianDist(st), MedianDist(der), MedianDist(api)
	res.Achieved = Median(achieved)
	for name, xs := range cpu {
		res.CPUPerMillion[name] = Median(xs)
	}
	res.Windows = runs
	return res, nil
}

// runSoak holds rate for dur on a fresh system, then drains it and counts.
func runSoak(ctx context.Context, env *environment, rate float64, dur time.Duration) (*SoakResult, Chart, error) {
	o := env.opts
	res := &SoakResult{Rate: rate, Duration: dur}
	sys, err := env.startSystem(ctx, true)
	if err != nil {
		return nil, Chart{}, err
	}
	defer sys.stop()
	gen := newGenerator(env.nextSeed(), o.Customers)
	lat := newLatency()
	stop, err := lat.start(ctx, sys, o.PollInterval)
	if err != nil {
		return nil, Chart{}, err
	}
	defer stop()
	mctx, stopMon := context.WithCancel(ctx)
	defer stopMon()
	mon := &monitor{}
	go mon.run(mctx, sys, time.Second)

	// RSS "start" is read once the services have warmed up (their caches
	// and the first parts), a sixth into the soak but at most 10s in.
	warm := min(10*time.Second, dur/6)
	rssStart := make(chan map[string]procstat.Usage, 1)
	go func() {
		select {
		case <-time.After(warm):
			rssStart <- sys.usage()
		case <-ctx.Done():
			rssStart <- nil
		}
	}()
	rssCh := make(chan []RSSReading, 1)
	rctx, stopRSS := context.WithCancel(ctx)
	go func() { rssCh <- readRSS(rctx, sys, max(5*time.Second, dur/20)) }()
	u0 := sys.usage()
	t0 := time.Now()
	load, lerr := runPublisher(ctx, sys, gen, rate, dur, lat, o.sampleEvery(rate))
	t1 := time.Now()
	uEnd := sys.usage()
	stopRSS()
	res.RSS = append(<-rssCh, RSSReading{At: t1.Sub(t0), RSS: rssOf(uEnd)})
	uStart := <-rssStart
	if lerr != nil && !errors.Is(lerr, errNotStored) {
		return nil, Chart{}, lerr
	}
	res.NotStored, res.Retried = load.failed, load.retried
	res.Achieved = load.rate()
	res.RSSStart, res.RSSEnd = map[string]int64{}, map[string]int64{}
	for name, u := range uStart {
		res.RSSStart[name] = u.RSS
	}
	for name, u := range uEnd {
		res.RSSEnd[name] = u.RSS
	}
	td := time.Now()
	if err := sys.drain(ctx, 2*time.Minute); err != nil {
		res.DrainErr = err.Error()
	}
	env.log.Info("soak drained", "took", time.Since(td).Round(100*time.Millisecond))
	res.Published = uint64(load.accepted)
	res.CPUPerMillion = perMillion(cpuDelta(u0, sys.usage()), res.Published)
	settle(ctx, lat, 5*time.Second)
	if err := sys.db.Conn.QueryRow(ctx, "SELECT count(), uniqExact(source, id) FROM events").Scan(&res.Rows, &res.Uniq); err != nil {
		return nil, Chart{}, fmt.Errorf("bench: soak count: %w", err)
	}
	res.Lost = int64(res.Published) - int64(res.Uniq)
	res.Duplicated = int64(res.Rows) - int64(res.Uniq)
	res.StreamMsgs, _ = sys.streamSeq(ctx)
	if res.Parts, res.EventParts, err = sys.parts(ctx); err != nil {
		return nil, Chart{}, err
	}
	ss := mon.between(t0, t1)
	st := Step{Target: rate, Achieved: res.Achieved}
	judge(&st, ss, o)
	res.Bounded = st.Bounded
	res.WriterSlope, res.ProjSlope = st.WriterGrowth, st.ProjectorGrowth
	for _, s := range ss {
		res.MaxWriter, res.MaxProj = max(res.MaxWriter, s.writer), max(res.MaxProj, s.projector)
	}
	l := lat.results()
	res.Visible, res.State, res.Derive, res.API = Summarize(l.visible), Summarize(l.state), Summarize(l.derived), Summarize(l.api)
	return res, soakChart(t0, dur, load.perSec, mon.between(t0, t1.Add(time.Second)), l.visible, l.visibleAt, rate), nil
}

// soakChart plots per bucket: events published, rows written, and the p99
// of publish -> visible of the samples that resolved in the bucket.
func soakChart(t0 time.Time, dur time.Duration, perSec []int64, ss []sample, a []time.Duration, aAt []time.Time, rate float64) Chart {
	bucket := max(5*time.Second, (dur / 60).Round(time.Second))
	bs := bucket.Seconds()
	n := int(math.Ceil(dur.Seconds() / bs))
	pub := make([]Point, 0, n)
	for i := range n {
		var sum int64
		for s := i * int(bs); s < (i+1)*int(bs) && s < len(perSec); s++ {
			sum += perSec[s]
		}
		pub = append(pub, Point{X: (float64(i) + 0.5) * bs, Y: float64(sum) / bs})
	}
	var rows []Point
	for i := 1; i < len(ss); i++ {
		dt := ss[i].at.Sub(ss[i-1].at).Seconds()
		if dt > 0 && ss[i].rows >= ss[i-1].rows {
			rows = append(rows, Point{X: ss[i].at.Sub(t0).Seconds(), Y: float64(ss[i].rows-ss[i-1].rows) / dt})
		}
	}
	rows = smooth(rows, int(bs))
	byBucket := make([][]time.Duration, n+1)
	for i, at := range aAt {
		k := int(at.Sub(t0).Seconds() / bs)
		if k >= 0 && k <= n {
			byBucket[k] = append(byBucket[k], a[i])
		}
	}
	var p99 []Point
	for k, ds := range byBucket {
		if len(ds) > 0 {
			p99 = append(p99, Point{X: (float64(k) + 0.5) * bs, Y: float64(Summarize(ds).P99) / float64(time.Millisecond)})
		}
	}
	return Chart{
		Title:  fmt.Sprintf("Soak at %.0f events/s: throughput and p99 publish → row visible", rate),
		XLabel: "seconds into the soak",
		XFrom:  0,
		XTo:    dur.Seconds(),
		Left: Axis{Label: "events/s", Series: []Series{
			{Name: "published (pkg/publish)", Color: "#1f77b4", Points: pub},
			{Name: "rows written (ClickHouse)", Color: "#2ca02c", Points: rows},
		}},
		Right: Axis{Label: "p99 latency (ms)", Series: []Series{
			{Name: fmt.Sprintf("p99 visible per %s", bucket), Color: "#d62728", Points: p99},
		}},
	}
}

// smooth averages points over windows of k (writer inserts arrive in
// batches, so per-second row counts saw-tooth).
func smooth(ps []Point, k int) []Point {
	if k <= 1 || len(ps) < k {
		return ps
	}
	var out []Point
	for i := 0; i+k <= len(ps); i += k {
		var x, y float64
		for _, p := range ps[i : i+k] {
			x += p.X
			y += p.Y
		}
		out = append(out, Point{X: x / float64(k), Y: y / float64(k)})
	}
	return out
}

// RSSReading is the resident set of every process at a point of the soak.
type RSSReading struct {
	At  time.Duration // since the soak's load started
	RSS map[string]int64
}

func rssOf(u map[string]procstat.Usage) map[string]int64 {
	m := map[string]int64{}
	for name, x := range u {
		m[name] = x.RSS
	}
	return m
}

// readRSS reads every process's RSS every interval until ctx ends.
func readRSS(ctx context.Context, sys *system, every time.Duration) []RSSReading {
	t0 := time.Now()
	var out []RSSReading
	ops.Every(ctx, every, func(ctx context.Context) {
		r := RSSReading{At: time.Since(t0), RSS: rssOf(sys.usage())}
		args := []any{"at", r.At.Round(time.Second), "nats_mib", r.RSS[ProcNATS] >> 20, "projector_mib", r.RSS[ProcProjector] >> 20,
			"writer_mib", r.RSS[ProcWriter] >> 20, "clickhouse_mib", r.RSS[ProcClickHouse] >> 20}
		// What NATS stores, to set its memory against.
		l := sys.js.ListStreams(ctx)
		for info := range l.Info() {
			args = append(args, info.Config.Name+"_mib", info.State.Bytes>>20)
		}
		sys.env.log.Info("soak rss", args...)
		out = append(out, r)
	})
	return out
}

// troughSlope is the growth per second of the backlog's low point: from
// the minimum of the first third of ys to the minimum of the last third.
// A consumer that keeps up drains back to its low point every batch, so
// its troughs stay level however high its teeth are; one falling behind
// cannot get back there.
func troughSlope(xs, ys []float64) float64 {
	n := len(ys) / 3
	if n == 0 {
		return 0
	}
	dt := xs[len(xs)-1-n/2] - xs[n/2]
	if dt <= 0 {
		return 0
	}
	return (slices.Min(ys[len(ys)-n:]) - slices.Min(ys[:n])) / dt
}
