package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/klantreis/journey/pkg/ops"
)

// The sustained-throughput search of one path, in two stages on one
// system:
//
//  1. A coarse search with short steps (StepWindow) finds the candidate:
//     the rate grows by Growth while a step is bounded (shrinks while
//     not), then Bisect halvings between the last bounded and the first
//     unbounded rate. Short steps hide slow backlog growth, so the
//     candidate is an upper estimate, never a result.
//  2. Each run holds the candidate for ConfirmWindow (the 60 s),
//     drained before, and judges the whole window; a window that is not
//     bounded steps the rate down by StepDown and holds it again, up to
//     MaxConfirms windows (the first run: FirstConfirms, 8 in full mode,
//     down to 0.41 of the candidate). Later runs start from the rate the
//     first run held. A run's result is the first rate held bounded for
//     the whole window, 0 when none was. The figure is the median of the
//     runs' results.
//
// A third run is not started when the first two agree (it cannot move the
// median of three), nor is a later run (or a later run's step down)
// when the time budget (Options.Budget) would not leave room for the
// phases after the search; the report says so. The first run always
// runs, so each path has a figure.

// walk is the coarse search: try reports whether a rate is bounded. It
// returns the highest bounded rate (0 when none) and the lowest
// unbounded rate above it (0 when none). It takes at least min(maxSteps,
// needed) steps and, while no rate was bounded, keeps walking down up to
// hardMax steps rather than report nothing.
func walk(start, growth float64, bisect, maxSteps, hardMax int, try func(rate float64) (bool, error)) (ok, bad float64, err error) {
	rate := start
	steps := 0
	for steps < maxSteps || ok == 0 && steps < hardMax {
		b, err := try(rate)
		steps++
		if err != nil {
			return ok, bad, err
		}
		if b {
			ok = rate
			if bad > 0 {
				break
			}
			rate *= growth
		} else {
			bad = rate
			if ok > 0 {
				break
			}
			rate /= growth
		}
	}
	for i := 0; i < bisect && ok > 0 && bad > 0 && steps < maxSteps; i++ {
		mid := (ok + bad) / 2
		b, err := try(mid)
		steps++
		if err != nil {
			return ok, bad, err
		}
		if b {
			ok = mid
		} else {
			bad = mid
		}
	}
	return ok, bad, nil
}

// ladder holds rates from cand down by stepDown until one is bounded, at
// most n windows or until more returns false (the time budget). It
// returns the held rate, 0 when none was.
func ladder(cand, stepDown float64, n int, more func() bool, hold func(rate float64) (bool, error)) (float64, error) {
	rate := cand
	for k := 0; k < n; k++ {
		if k > 0 && !more() {
			break
		}
		b, err := hold(rate)
		if err != nil {
			return 0, err
		}
		if b {
			return rate, nil
		}
		rate *= stepDown
	}
	return 0, nil
}

// medianSettled reports whether the runs so far already decide the
// median of want runs: more than half of want agree on one non-zero rate.
func medianSettled(maxes []float64, want int) bool {
	count := map[float64]int{}
	for _, m := range maxes {
		if m > 0 {
			count[m]++
			if count[m] > want/2 {
				return true
			}
		}
	}
	return false
}

// doomed reports, during a confirmation window, whether the window
// already fails both backlog tests (judge's trend and total growth) on
// the readings so far, at least a third into the window: then holding it
// to the end only costs time. An abort can only lower the result (the
// backlog might have recovered by the end), never raise it.
func doomed(ss []sample, target float64, elapsed, window time.Duration, o Options) (bool, string) {
	if elapsed < window/3 || len(ss) < 12 {
		return false, ""
	}
	bs := seriesOf(ss)
	base, last := bs.base, bs.last
	lim, allow := o.growthLimits(target)
	if g, se := SlopeSE(bs.xs, bs.writer); g-2*se > lim && float64(last.writer-base.writer) > allow {
		return true, fmt.Sprintf("writer backlog grows %.0f±%.0f/s, +%d", g, se, last.writer-base.writer)
	}
	if g, se := SlopeSE(bs.xs, bs.projector); g-2*se > lim && float64(last.projector-base.projector) > allow {
		return true, fmt.Sprintf("projector backlog grows %.0f±%.0f/s, +%d", g, se, last.projector-base.projector)
	}
	return false, ""
}

// searcher holds one path's system for the search.
type searcher struct {
	env       *environment
	sys       *system
	gen       *generator
	mon       *monitor
	path      Path
	needDrain bool
}

// hold runs rate for window and judges it. With abort, a window that is
// doomed (see [doomed]) is stopped early and judged not bounded.
func (s *searcher) hold(ctx context.Context, rate float64, window time.Duration, phase string, abort bool) (Step, error) {
	o := s.env.opts
	sys := s.sys
	st := Step{Target: rate, Phase: phase, Window: window}
	if s.needDrain || abort {
		// A confirmation window starts from empty backlogs, so that it
		// judges this rate, not what the step before left.
		st.DrainedBeforeMeasure = sys.drain(ctx, o.DrainWait) == nil
	}
	if err := sys.alive(); err != nil {
		return st, err
	}
	c0 := sys.counters(ctx)
	u0 := sys.usage()
	t0 := time.Now()
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	var why string
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		if !abort {
			return
		}
		ops.Every(lctx, time.Second, func(context.Context) {
			now := time.Now()
			if d, w := doomed(s.mon.between(t0, now), rate, now.Sub(t0), window, o); d {
				why = w
				stop()
			}
		})
	}()
	res, lerr := send(lctx, sys, s.gen, s.path, rate, window, nil, 0)
	stop()
	<-watched
	t1 := time.Now()
	u1 := sys.usage()
	work := sys.counters(ctx).since(c0)
	st.Stored, st.CHInserts, st.CHRows = work.streams, work.inserts, work.insRow
	st.CHMerged, st.CHSelects = work.merged, work.selects
	if ctx.Err() != nil {
		return st, ctx.Err()
	}
	if err := sys.alive(); err != nil {
		return st, err
	}
	st.Achieved, st.Accepted, st.Elapsed = res.rate(), res.accepted, t1.Sub(t0)
	st.CPU = cpuDelta(u0, u1)
	judge(&st, s.mon.between(t0, t1), o)
	switch {
	case why != "":
		st.Bounded, st.Aborted = false, true
		st.Why = fmt.Sprintf("%s (stopped after %s)", why, st.Elapsed.Round(time.Second))
	case lerr != nil && st.Bounded && !errors.Is(lerr, context.Canceled):
		st.Bounded, st.Why = false, "load failed: "+lerr.Error()
	}
	s.env.log.Info("step", "path", s.path, "phase", phase, "target", int(rate), "window", window, "achieved", int(st.Achieved),
		"bounded", st.Bounded, "writer_backlog", st.Writer, "projector_backlog", st.Projector, "why", st.Why)
	s.needDrain = !st.Bounded
	return st, nil
}

// sustain runs the search of one path (see the comment at the top of
// this file) on a fresh system. reserve is the time the phases after it
// need; the search starts no window that would leave less.
func sustain(ctx context.Context, env *environment, path Path, start, growth float64, bisect int, deadline time.Time, reserve time.Duration) (*Sustained, error) {
	o := env.opts
	res := &Sustained{Path: path, Window: o.ConfirmWindow, CoarseWindow: o.StepWindow}
	sys, err := env.startSystem(ctx, true)
	if err != nil {
		return nil, err
	}
	defer sys.stop()
	s := &searcher{env: env, sys: sys, gen: newGenerator(env.nextSeed(), o.Customers), mon: &monitor{}, path: path, needDrain: true}
	mctx, stopMon := context.WithCancel(ctx)
	defer stopMon()
	go s.mon.run(mctx, sys, o.monitorEvery())

	// Warm-up: connections, caches, the first parts; not judged.
	if _, err := send(ctx, sys, s.gen, path, start/2, min(3*time.Second, o.StepWindow/2), nil, 0); err != nil {
		env.log.Warn("warm-up", "err", err)
	}
	ok, bad, err := walk(start, growth, bisect, o.MaxSteps, o.MaxSteps+3, func(rate float64) (bool, error) {
		st, err := s.hold(ctx, rate, o.StepWindow, "coarse", false)
		res.Coarse = append(res.Coarse, st)
		return st.Bounded, err
	})
	if err != nil {
		return nil, err
	}
	res.Candidate = ok
	if ok == 0 {
		// Nothing was bounded even in short steps: hold below the lowest
		// rate tried rather than report nothing.
		res.Candidate = bad * o.StepDown
	}
	env.log.Info("candidate", "path", path, "rate", int(res.Candidate), "coarse_unbounded_at", int(bad))

	fits := func() bool {
		return time.Until(deadline) >= o.ConfirmWindow+5*time.Second+reserve
	}
	var maxes []float64
	for i := range o.SustainedRuns {
		if i > 0 && medianSettled(maxes, o.SustainedRuns) {
			res.Note = fmt.Sprintf("%d of %d runs: the first agree, so further runs cannot move the median", i, o.SustainedRuns)
			break
		}
		if i > 0 && !fits() {
			res.Note = fmt.Sprintf("%d of %d runs: the time budget left no room for more", i, o.SustainedRuns)
			break
		}
		run := SearchRun{}
		more, windows, from := fits, o.MaxConfirms, res.Candidate
		if i == 0 {
			// The first run always ends with a figure, budget or not: a
			// path without a figure is worse than a run that ends a few
			// minutes late. Short coarse steps can overshoot by more than
			// MaxConfirms step-downs (the collector path of one full run
			// failed 5491, 4832 and 4252/s while the publisher path held
			// 3905), so it may step further; a failing window is usually
			// stopped a third in.
			more, windows = func() bool { return true }, max(o.MaxConfirms, o.FirstConfirms)
		} else if maxes[0] > 0 {
			// Later runs start where the first one held: they check that
			// figure instead of repeating the first run's descent.
			from = maxes[0]
		}
		held, err := ladder(from, o.StepDown, windows, more, func(rate float64) (bool, error) {
			st, err := s.hold(ctx, rate, o.ConfirmWindow, fmt.Sprintf("run %d", i+1), true)
			run.Steps = append(run.Steps, st)
			return st.Bounded, err
		})
		if err != nil {
			return nil, err
		}
		run.Max = held
		res.Runs = append(res.Runs, run)
		maxes = append(maxes, held)
		env.log.Info("sustained", "path", path, "run", i+1, "max", int(held))
	}
	res.Max = Median(maxes)
	if math.IsNaN(res.Max) {
		res.Max = 0
	}
	return res, nil
}
