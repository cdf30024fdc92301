// Package bench is journey's system benchmark (`make bench`): the real
// services, each in its own process (this program started again with
// JOURNEY_BENCH_SERVE naming the service), an embedded NATS server in a
// process of its own, a local ClickHouse, and the simulator's journeys as
// the load. It measures, in one run:
//
//   - the ceiling: raw JetStream publish, pull and ordered consume, and
//     clickhouse-go batch insert of the same events;
//   - the sustained throughput through pkg/publish and through the
//     collector: the highest rate at which the writer's and the
//     projector's backlogs stay bounded for 60 s (a coarse search with
//     short steps finds the candidate; each run holds it for the full
//     window, stepping down while it is not bounded; search.go);
//   - latency from publish to row visible, state written and derived
//     event, at 10k events/s and at half the sustained maximum;
//   - CPU seconds per process per million events, ClickHouse parts;
//   - a soak at half the maximum: RSS, lost and duplicated events,
//     backlog; and a chart of throughput and p99 over it.
//
// Every figure but the soak's is the median of its runs. Like the local
// stack it is allowed to import the services: it composes them and adds
// no behaviour to them.
package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/klantreis/journey/internal/chserver"
	"github.com/klantreis/journey/internal/procstat"
)

// Options shape a bench run. [Full] and [Short] are the presets of `make
// bench` and `make bench-short`.
type Options struct {
	// Mode names the preset in the report ("full", "short").
	Mode string
	// Exe and ExeArgs start a child service: the bench program itself
	// (main passes os.Executable()), with JOURNEY_BENCH_SERVE set.
	Exe     string
	ExeArgs []string
	// Env is the environment the children start from (main passes
	// os.Environ(), so JOURNEY_WRITER_BATCH_SIZE and the like apply); the
	// bench adds the addresses and names it owns.
	Env []string
	// ClickHouseAddr of a running server; empty starts a local one
	// (internal/chserver) under WorkDir, whose CPU is then measured too.
	ClickHouseAddr string
	// WorkDir holds NATS stores, ClickHouse data and the children's logs
	// (default: a new temporary directory, removed at the end).
	WorkDir  string
	KeepData bool

	// Runs of each ceiling measurement (default 3).
	Runs int
	// CeilingEvents per ceiling run.
	CeilingEvents int
	// SustainedRuns is how many confirmation runs per path decide the
	// sustained figure (their median; see search.go).
	SustainedRuns int
	// StepWindow is how long each rate of the coarse search is held: short,
	// so the candidate is found quickly; never a result on its own.
	StepWindow time.Duration
	// ConfirmWindow is how long a run holds a rate before it counts as
	// sustained (the issue: 60 s). StepDown multiplies the rate after a
	// window that was not bounded, up to MaxConfirms windows per run; the
	// first run may take up to FirstConfirms (when larger), since it must
	// end with a figure and the coarse candidate can overshoot.
	ConfirmWindow time.Duration
	StepDown      float64
	MaxConfirms   int
	FirstConfirms int
	// StartRate is the coarse search's first rate (events/s; 0: a fifth of
	// the slowest raw stage measured; the collector's starts at what the
	// publisher path sustained). Growth multiplies it while the backlogs
	// stay bounded (divides while not); Bisect halvings follow the first
	// change. MaxSteps bounds the coarse steps (3 more while no rate was
	// bounded).
	StartRate float64
	Growth    float64
	Bisect    int
	MaxSteps  int
	// Budget bounds the whole run (0: none): the search starts no
	// confirmation window that would leave the later phases (latency,
	// soak) too little time, and reports the runs it made. The first
	// window of each path is always held, so each path has a figure.
	Budget time.Duration
	// MaxLag bounds the backlog growth over a step, in seconds of load
	// but at least BacklogFloor events (the consumers' batches: the
	// writer holds up to two of 5000); MaxGrowth bounds its slope as a
	// share of the rate.
	MaxLag       time.Duration
	BacklogFloor int64
	MaxGrowth    float64
	// DrainWait bounds the wait for the backlog to clear between steps.
	DrainWait time.Duration

	// LatencyRate is the fixed latency rate (default 10000); the other is
	// half the sustained maximum.
	LatencyRate   float64
	LatencyRuns   int
	LatencyWindow time.Duration
	// SampleRate is the (a) and (b) samples per second (default 200).
	SampleRate float64
	// PollInterval of the row count (default 20ms).
	PollInterval time.Duration

	// Soak duration at half the sustained maximum.
	Soak time.Duration
	// SoakOnly, when above 0, skips everything but the soak and holds
	// this rate (events/s) instead of half the maximum: for looking into
	// memory (journey-bench -soak-only).
	SoakOnly float64

	// NATSMemLimit is the NATS server child's GOMEMLIMIT ("" leaves the
	// Go runtime's default: no limit, heap up to twice the live data).
	NATSMemLimit string

	// Customers in the simulated population (default 50000).
	Customers int
	// CollectorWorkers are the concurrent HTTP clients (default 16).
	CollectorWorkers int
	// Seed of the load (default: from the clock).
	Seed uint64
	// Commit is written into the report (main passes [Commit]).
	Commit string
}

// Full is `make bench`: at most about 18.5 minutes on 2 cores (the build
// comes on top).
func Full() Options {
	return Options{Mode: "full", Runs: 3, CeilingEvents: 100_000, SustainedRuns: 3, StepWindow: 4 * time.Second,
		ConfirmWindow: 60 * time.Second, StepDown: 0.88, MaxConfirms: 3, FirstConfirms: 8, Budget: 18*time.Minute + 30*time.Second,
		Growth: 1.5, Bisect: 2, MaxSteps: 6, MaxLag: 2 * time.Second, BacklogFloor: 10000, MaxGrowth: 0.02, DrainWait: 30 * time.Second,
		LatencyRate: 10000, LatencyRuns: 3, LatencyWindow: 5 * time.Second, SampleRate: 200, PollInterval: 20 * time.Millisecond,
		Soak: 10 * time.Minute, Customers: 50000, CollectorWorkers: 16}
}

// Short is `make bench-short`: a quick look in under 3 minutes; one
// search run per path and short windows (a rate counts as sustained after
// 10 s, not the 60 s; the report says so), so its figures are
// rougher.
func Short() Options {
	o := Full()
	o.Mode = "short"
	o.CeilingEvents = 20_000
	o.SustainedRuns = 1
	o.StepWindow = 3 * time.Second
	o.ConfirmWindow = 10 * time.Second
	o.MaxConfirms = 2
	o.FirstConfirms = 4
	o.Budget = 0 // one run: its first window is always held
	o.Bisect = 1
	o.MaxSteps = 3
	o.DrainWait = 8 * time.Second
	o.LatencyWindow = 2 * time.Second
	o.Soak = 30 * time.Second
	return o
}

// Report is everything a bench run measured.
type Report struct {
	Mode      string
	Started   time.Time
	Duration  time.Duration
	Cores     int
	Commit    string
	CHVersion string

	Ceilings []Ceiling
	Ceiling  Ceiling // medians

	Sustained map[Path]*Sustained
	Latency   []*LatencyResult
	// CPUPerMillion is CPU seconds per million events per process at the
	// sustained maximum: the median over the search runs of the highest
	// bounded step via pkg/publish (no latency observers running), the
	// collector's from the collector search. CPUHalf is the same from the
	// latency windows at half the maximum (observers running).
	CPUPerMillion map[string]float64
	CPUHalf       map[string]float64
	// Work is what one event costs in messages and inserts at the
	// sustained maximum via pkg/publish (medians over the runs).
	Work  Work
	Soak  *SoakResult
	Chart Chart

	// OtherLoad is the share of the machine's CPU time during the run
	// that other processes used (0..1): high means the figures were taken
	// on a shared machine.
	OtherLoad float64

	ceilingN int
}

// Sustained is the search result of one path.
type Sustained struct {
	Path Path
	// Coarse are the short steps that found Candidate, the rate each run
	// holds first.
	Coarse    []Step
	Candidate float64
	Runs      []SearchRun
	Max       float64 // median of the runs' maxima
	// Window is how long a run held a rate; CoarseWindow the coarse steps'.
	Window, CoarseWindow time.Duration
	// Note says why fewer runs than asked for were made ("" when all).
	Note string
}

// SearchRun is one confirmation run: its windows (the candidate, then
// lower rates while not bounded) and the rate held bounded (0: none).
type SearchRun struct {
	Steps []Step
	Max   float64
}

// Step is one rate held for a window.
type Step struct {
	// Phase is "coarse" or "run N"; Window how long the rate was to be
	// held; Aborted that it was stopped early as doomed (not bounded).
	Phase                string
	Window               time.Duration
	Aborted              bool
	Target, Achieved     float64
	Writer, Projector    int64 // backlog at the end
	WriterGrowth         float64
	ProjectorGrowth      float64 // backlog slope, events/s
	Bounded              bool
	Why                  string // why not bounded
	CPU                  map[string]time.Duration
	Accepted             int64
	Elapsed              time.Duration
	StartedWithBacklog   int64
	DrainedBeforeMeasure bool
	// Stored is the messages each stream stored during the step;
	// CHInserts and CHRows the insert queries and rows ClickHouse took.
	Stored              map[string]uint64
	CHInserts, CHRows   uint64
	CHMerged, CHSelects uint64 // rows merged, select queries
}

// LatencyResult is the latency at one rate.
type LatencyResult struct {
	Rate                   float64
	Label                  string
	Achieved               float64
	Visible, State, Derive Dist
	// API: publish -> the customer_state row the API serves reflects it.
	API           Dist
	CPUPerMillion map[string]float64
	Windows       int
	// NotStored counts events pkg/publish gave up on (and reported).
	NotStored int64
}

// SoakResult is the long run.
type SoakResult struct {
	Rate, Achieved   float64
	Duration         time.Duration
	RSSStart, RSSEnd map[string]int64
	// RSS is every process's resident set read through the soak (every
	// twentieth of it, at least every 5s), from the first second on.
	RSS                   []RSSReading
	Published, Rows, Uniq uint64
	Lost, Duplicated      int64
	// NotStored: events pkg/publish gave up on and reported as failed (not
	// lost: the caller knows); Retried: stored, acked on a retry.
	NotStored, Retried     int64
	StreamMsgs             uint64
	MaxWriter, MaxProj     int64
	WriterSlope, ProjSlope float64
	Bounded                bool
	Parts, EventParts      uint64
	Visible, State, Derive Dist
	API                    Dist
	DrainErr               string
	// CPUPerMillion is CPU seconds per million published events per
	// process, from the soak's start to the end of its drain: the cost of
	// the same load, so two configurations compare at one rate.
	CPUPerMillion map[string]float64
}

// Run runs the whole bench and returns its report. It stops everything it
// started, also on error or when ctx is cancelled.
func Run(ctx context.Context, o Options, log *slog.Logger) (*Report, error) {
	if o.Exe == "" {
		return nil, errors.New("bench: Options.Exe is required (the program that serves the children)")
	}
	rep := &Report{Mode: o.Mode, Started: time.Now().UTC(), Cores: runtime.NumCPU(), Sustained: map[Path]*Sustained{},
		Commit: o.Commit, ceilingN: o.CeilingEvents}
	env := &environment{opts: o, log: log}
	busy0, _ := procstat.MachineBusy()
	cleanup, err := env.prepare(ctx)
	defer cleanup()
	if err != nil {
		return nil, err
	}

	if o.SoakOnly > 0 {
		if err := rep.soak(ctx, env, "soak only", o.SoakOnly); err != nil {
			return nil, err
		}
		return rep, nil
	}
	if err := rep.measureCeilings(ctx, env); err != nil {
		return nil, err
	}
	if err := rep.measureSustained(ctx, env); err != nil {
		return nil, err
	}
	half := rep.Sustained[ViaPublisher].Max / 2
	if half <= 0 {
		// Nothing was bounded (an overloaded machine): measure at a low
		// rate rather than not at all; the report shows the sustained 0.
		half = 500
	}
	if err := rep.measureLatency(ctx, env, half); err != nil {
		return nil, err
	}
	if err := rep.soak(ctx, env, "soak", half); err != nil {
		return nil, err
	}
	rep.measureOtherLoad(env, busy0)
	return rep, nil
}

// prepare makes the work directory, starts the local ClickHouse unless
// one was given, and picks the seed. The returned cleanup is never nil and
// is to run even when prepare fails, since a failed ClickHouse start still
// leaves a temporary directory behind.
func (env *environment) prepare(ctx context.Context) (cleanup func(), err error) {
	o := env.opts
	var cleanups []func()
	cleanup = func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	if o.WorkDir == "" {
		d, err := os.MkdirTemp("", "journey-bench-")
		if err != nil {
			return cleanup, err
		}
		env.workDir = d
		if !o.KeepData {
			cleanups = append(cleanups, func() { os.RemoveAll(d) })
		}
	} else {
		env.workDir = o.WorkDir
		if err := os.MkdirAll(o.WorkDir, 0o755); err != nil {
			return cleanup, err
		}
	}
	if o.ClickHouseAddr != "" {
		env.chAddr = o.ClickHouseAddr
	} else {
		dir := filepath.Join(env.workDir, "clickhouse")
		srv, err := chserver.Start(ctx, chserver.Options{Dir: dir, StartTimeout: 120 * time.Second})
		if err != nil {
			return cleanup, fmt.Errorf("%w: local ClickHouse: %w", ErrSystem, err)
		}
		cleanups = append(cleanups, func() { srv.Stop() })
		env.chAddr = srv.Addr()
		env.chPID = procstat.FindPID(filepath.Join(dir, "config.xml"))
	}
	seed := o.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	env.seed = seed
	env.log.Info("bench starting", "mode", o.Mode, "clickhouse", env.chAddr, "work_dir", env.workDir, "seed", seed)
	return cleanup, nil
}

// logPhase logs the start of a phase; the returned func logs its end and how
// long it took.
func logPhase(log *slog.Logger, name string) func() {
	t := time.Now()
	log.Info("phase", "name", name)
	return func() { log.Info("phase done", "name", name, "took", time.Since(t).Round(time.Second)) }
}

// soak runs the soak, the last phase of either kind of run, and so also
// stamps the report's server version and duration.
func (rep *Report) soak(ctx context.Context, env *environment, name string, rate float64) error {
	done := logPhase(env.log, name)
	var err error
	if rep.Soak, rep.Chart, err = runSoak(ctx, env, rate, env.opts.Soak); err != nil {
		return err
	}
	done()
	rep.CHVersion = env.chVersion
	rep.Duration = time.Since(rep.Started)
	return nil
}

// measureCeilings is phase 1: the raw stages' ceilings, each run and
// their medians.
func (rep *Report) measureCeilings(ctx context.Context, env *environment) error {
	o := env.opts
	done := logPhase(env.log, "ceiling")
	ev, err := makeRawEvents(env.nextSeed(), o.Customers, o.CeilingEvents)
	if err != nil {
		return err
	}
	for i := range o.Runs {
		c, err := measureCeiling(ctx, env, ev, 5000)
		if err != nil {
			return err
		}
		env.log.Info("ceiling", "run", i+1, "publish", int(c.Publish), "pull", int(c.Pull), "ordered", int(c.Ordered), "insert", int(c.Insert))
		rep.Ceilings = append(rep.Ceilings, c)
	}
	rep.Ceiling = medianCeiling(rep.Ceilings)
	done()
	return nil
}

// measureSustained is phase 2: the sustained throughput of both paths,
// the publisher's first since the collector's search starts from it.
func (rep *Report) measureSustained(ctx context.Context, env *environment) error {
	o := env.opts
	var deadline time.Time
	if o.Budget > 0 {
		deadline = rep.Started.Add(o.Budget)
	} else {
		deadline = time.Now().Add(24 * time.Hour)
	}
	for _, path := range []Path{ViaPublisher, ViaCollector} {
		done := logPhase(env.log, "sustained "+string(path))
		start, growth, bisect := o.StartRate, o.Growth, o.Bisect
		if start <= 0 {
			c := rep.Ceiling
			start = max(1000, 0.2*min(c.Publish, c.Pull, c.Insert))
		}
		reserve := o.laterPhases()
		if path == ViaPublisher {
			reserve += o.minSearch()
		} else if pub := rep.Sustained[ViaPublisher]; pub != nil && pub.Max > 0 && o.StartRate <= 0 {
			// The collector's figure is near the publisher's: start there,
			// with smaller steps.
			start, growth, bisect = pub.Max, 1+(o.Growth-1)/2, 1
		}
		s, err := sustain(ctx, env, path, start, growth, bisect, deadline, reserve)
		if err != nil {
			return err
		}
		rep.Sustained[path] = s
		done()
	}
	return nil
}

// measureLatency is phase 3: latency at the fixed rate and at half the
// maximum; it also fills in the CPU and work per event, which come from
// the search and the latency windows together.
func (rep *Report) measureLatency(ctx context.Context, env *environment, half float64) error {
	o := env.opts
	for _, lr := range []struct {
		rate  float64
		label string
	}{{o.LatencyRate, "fixed"}, {half, halfLabel(rep.Sustained[ViaPublisher].Max)}} {
		done := logPhase(env.log, fmt.Sprintf("latency at %.0f/s", lr.rate))
		res, err := latencyAt(ctx, env, lr.rate, o.LatencyRuns, o.LatencyWindow)
		if err != nil {
			return err
		}
		res.Label = lr.label
		rep.Latency = append(rep.Latency, res)
		done()
	}
	rep.CPUHalf = rep.Latency[len(rep.Latency)-1].CPUPerMillion
	rep.CPUPerMillion = searchCPU(rep.Sustained[ViaPublisher])
	rep.Work = searchWork(rep.Sustained[ViaPublisher])
	delete(rep.CPUPerMillion, ProcCollector) // idle on this path
	if c, ok := searchCPU(rep.Sustained[ViaCollector])[ProcCollector]; ok {
		rep.CPUPerMillion[ProcCollector] = c
	}
	return nil
}

// measureOtherLoad sets OtherLoad from the machine's busy time since
// busy0, less what the bench, its children and its ClickHouse used.
func (rep *Report) measureOtherLoad(env *environment, busy0 time.Duration) {
	if busy1, err := procstat.MachineBusy(); err == nil && busy0 > 0 && busy1 > busy0 {
		own := env.ownCPU
		for _, pid := range []int{os.Getpid(), env.chPID} {
			if u, err := procstat.Read(pid); pid != 0 && err == nil {
				own += u.CPU
			}
		}
		rep.OtherLoad = max(0, 1-own.Seconds()/(busy1-busy0).Seconds())
	}
}

func halfLabel(max float64) string {
	if max <= 0 {
		return "no rate was sustained; a low fallback rate"
	}
	return "half of sustained max"
}

func (env *environment) nextSeed() uint64 {
	env.seed++
	return env.seed
}

func medianCeiling(cs []Ceiling) Ceiling {
	col := func(f func(Ceiling) float64) float64 {
		xs := make([]float64, len(cs))
		for i, c := range cs {
			xs[i] = f(c)
		}
		return Median(xs)
	}
	return Ceiling{
		Publish: col(func(c Ceiling) float64 { return c.Publish }),
		Pull:    col(func(c Ceiling) float64 { return c.Pull }),
		Ordered: col(func(c Ceiling) float64 { return c.Ordered }),
		Insert:  col(func(c Ceiling) float64 { return c.Insert }),
	}
}

// Work explains the CPU figures: per event stored in the touchpoint
// stream, the messages every stream stored; and ClickHouse's insert
// queries per second and rows per insert.
type Work struct {
	MsgsPerEvent    map[string]float64
	InsertsPerSec   float64
	RowsPerInsert   float64
	EventsPerInsert float64 // touchpoints per insert query, all tables
	MergedPerEvent  float64 // rows ClickHouse merged per touchpoint
	SelectsPerSec   float64
}

// searchWork is Work in the highest bounded step of each run, the median.
func searchWork(s *Sustained) Work {
	per := map[string][]float64{}
	var ips, rpi, epi, mpe, sps []float64
	for _, r := range s.Runs {
		best := bestStep(r)
		if best == nil {
			continue
		}
		ev := float64(best.Stored["TOUCHPOINTS"])
		if ev == 0 {
			continue
		}
		for name, n := range best.Stored {
			per[name] = append(per[name], float64(n)/ev)
		}
		if best.CHInserts > 0 && best.Elapsed > 0 {
			ips = append(ips, float64(best.CHInserts)/best.Elapsed.Seconds())
			rpi = append(rpi, float64(best.CHRows)/float64(best.CHInserts))
			epi = append(epi, ev/float64(best.CHInserts))
		}
		mpe = append(mpe, float64(best.CHMerged)/ev)
		if best.Elapsed > 0 {
			sps = append(sps, float64(best.CHSelects)/best.Elapsed.Seconds())
		}
	}
	w := Work{MsgsPerEvent: map[string]float64{}, InsertsPerSec: Median(ips), RowsPerInsert: Median(rpi), EventsPerInsert: Median(epi),
		MergedPerEvent: Median(mpe), SelectsPerSec: Median(sps)}
	for name, xs := range per {
		w.MsgsPerEvent[name] = Median(xs)
	}
	return w
}

func bestStep(r SearchRun) *Step {
	var best *Step
	for i := range r.Steps {
		st := &r.Steps[i]
		if st.Bounded && (best == nil || st.Target > best.Target) {
			best = st
		}
	}
	return best
}

// searchCPU is CPU seconds per million events per process in the highest
// bounded step of each search run, the median over the runs.
func searchCPU(s *Sustained) map[string]float64 {
	per := map[string][]float64{}
	for _, r := range s.Runs {
		best := bestStep(r)
		if best == nil || best.Accepted == 0 {
			continue
		}
		for name, d := range best.CPU {
			per[name] = append(per[name], d.Seconds()/float64(best.Accepted)*1e6)
		}
	}
	out := map[string]float64{}
	for name, xs := range per {
		out[name] = Median(xs)
	}
	return out
}

// laterPhases estimates the time the latency windows and the soak take
// after the search (from earlier runs: a system's start, warm-up and stop
// about 10 s; a latency window waits up to 5 s for its samples; the soak's
// drain, counts and stop about 30 s): what the search leaves of the budget.
func (o Options) laterPhases() time.Duration {
	latency := 2*(8*time.Second+min(3*time.Second, o.LatencyWindow)) + time.Duration(o.LatencyRuns)*(2*o.LatencyWindow+6*time.Second)
	return latency + o.Soak + 30*time.Second
}

// minSearch estimates the least time a path's search takes: the system,
// the coarse steps with their drains and one confirmation window.
func (o Options) minSearch() time.Duration {
	return 10*time.Second + time.Duration(o.MaxSteps)*(o.StepWindow+3*time.Second) + o.ConfirmWindow + 5*time.Second
}
