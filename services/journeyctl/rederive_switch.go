package journeyctl

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/klantreis/journey/pkg/ruleset"
)

// RederiveSwitchCmd is `rederive switch`.
type RederiveSwitchCmd struct {
	Version string        `help:"The version to make live (default: the newest version that is not live)."`
	Wait    time.Duration `default:"30s" help:"How long to wait for every running projector to report the new version."`
}

// SwitchResult is what `rederive switch` and `rollback` print.
type SwitchResult struct {
	Live     string  `json:"live"`
	Previous string  `json:"previous"`
	Spec     string  `json:"spec"`
	CatchUp  CatchUp `json:"catch_up"`
	// Projectors are the running projector instances and the version each
	// reported once the wait ended.
	Projectors []ruleset.Running `json:"projectors"`
}

// Run catches the version up with the stream and moves the pointer to it.
func (c *RederiveSwitchCmd) Run(ctx context.Context, env *Env) (err error) {
	ops, live, rev, err := env.opsLive(ctx)
	if err != nil {
		return err
	}
	target, err := env.pickTarget(ctx, ops, c.Version, live)
	if err != nil {
		return err
	}
	sel := map[string]any{"from": live.Version, "to": target.Name}
	defer func() { err = env.auditResult(ctx, "rederive.switch", sel, nil, err) }()
	switch {
	case target.Name == live.Version:
		return usagef("%s is live already", target.Name)
	case target.State != ruleset.StateReady:
		return fmt.Errorf("%w: %s is %s: run journeyctl rederive start --rules '%s' to finish it first", ErrVerify, target.Name, target.State, target.Spec)
	}
	return env.movePointer(ctx, ops, target.Version, ruleset.Live{Version: target.Name, Previous: live.Version}, rev, c.Wait, sel)
}

// movePointer catches the target up with the stream (silently: it is not
// live yet), then moves the pointer with compare-and-set. The projector
// takes the target's consumers over from where the catch-up left them, so
// only the events of the last moments are left for it, and their derived
// events are the target's first.
//
// Then it waits up to wait for every projector instance to report the
// target: until then the old version's workers may still apply (and emit
// for) the newest events; the target applies those again quietly. An
// instance that does not report in time (it may be gone, or stuck) makes
// it fail with ErrVerify, the pointer moved.
func (e *Env) movePointer(ctx context.Context, ops *ruleset.Store, target ruleset.Version, to ruleset.Live, rev uint64, wait time.Duration, sel map[string]any) error {
	cu, err := e.catchUp(ctx, target, "catch up "+target.Name)
	if err != nil {
		return err
	}
	sel["counts"] = cu.counts()
	to.At, to.Actor = e.now().UTC(), e.Actor()
	nrev, err := ops.MoveLive(ctx, to, rev)
	if err != nil {
		return err
	}
	running, lagging, gaveUp, err := waitProjectors(ctx, ops, target.Name, to.At, wait)
	if err != nil {
		return err
	}
	if len(gaveUp) > 0 {
		// A projector that cannot run the target stays on the old version:
		// the api must not read tables nobody keeps. The pointer goes back.
		back := ruleset.Live{Version: to.Previous, Previous: to.Version, At: e.now().UTC(), Actor: e.Actor()}
		if _, err := ops.MoveLive(ctx, back, nrev); err != nil {
			return fmt.Errorf("%w: projector(s) %s cannot run %s, and moving the pointer back to %s failed: %w",
				ErrVerify, strings.Join(gaveUp, "; "), target.Name, to.Previous, err)
		}
		sel["moved_back"] = true
		return fmt.Errorf("%w: projector(s) %s cannot run %s; the pointer is back at %s", ErrVerify, strings.Join(gaveUp, "; "), target.Name, to.Previous)
	}
	res := SwitchResult{Live: to.Version, Previous: to.Previous, Spec: target.Spec, CatchUp: cu, Projectors: running}
	if err := e.emit(res, func(w io.Writer) {
		fmt.Fprintf(w, "live rules version: %s (%s), was %s; caught up %d events first\n", res.Live, res.Spec, res.Previous, cu.Events)
		for _, r := range running {
			fmt.Fprintf(w, "  projector %s runs %s", r.Instance, r.Version)
			if r.Error != "" {
				fmt.Fprintf(w, " (%s)", r.Error)
			}
			fmt.Fprintln(w)
		}
		if len(running) == 0 {
			fmt.Fprintln(w, "  no projector is running; each follows the pointer when it starts")
		}
	}); err != nil {
		return err
	}
	if len(lagging) > 0 {
		return fmt.Errorf("%w: the pointer is at %s, but projector(s) %s did not report it within %s (journeyctl status shows them)", ErrVerify, target.Name, strings.Join(lagging, "; "), wait)
	}
	return nil
}

// waitProjectors polls the projectors' reports until each runs version,
// or reported after moved that it cannot, or wait is over. It returns the
// reports, the instances lagging and those of them that gave up.
func waitProjectors(ctx context.Context, ops *ruleset.Store, version string, moved time.Time, wait time.Duration) ([]ruleset.Running, []string, []string, error) {
	deadline := time.Now().Add(wait)
	for {
		running, err := ops.RunningAll(ctx)
		if err != nil {
			return nil, nil, nil, err
		}
		var lagging, gaveUp []string
		for _, r := range running {
			if r.Version == version {
				continue
			}
			l := r.Instance + " on " + r.Version
			if r.Error != "" {
				l += ": " + r.Error
			}
			lagging = append(lagging, l)
			if r.Error != "" && !r.At.Before(moved) {
				gaveUp = append(gaveUp, l)
			}
		}
		if len(lagging) == len(gaveUp) || !time.Now().Before(deadline) {
			return running, lagging, gaveUp, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil, nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// RederiveRollbackCmd is `rederive rollback`.
type RederiveRollbackCmd struct {
	Wait time.Duration `default:"30s" help:"How long to wait for every running projector to report the previous version."`
}

// Run makes the previous version live again.
func (c *RederiveRollbackCmd) Run(ctx context.Context, env *Env) (err error) {
	ops, live, rev, err := env.opsLive(ctx)
	if err != nil {
		return err
	}
	sel := map[string]any{"from": live.Version, "to": live.Previous}
	defer func() { err = env.auditResult(ctx, "rederive.rollback", sel, nil, err) }()
	if live.Previous == "" {
		return fmt.Errorf("%w: %s has been live from the start; there is nothing to roll back to", ErrNotFound, live.Version)
	}
	prev, err := env.version(ctx, ops, live.Previous)
	if err != nil {
		return err
	}
	return env.movePointer(ctx, ops, prev.Version, ruleset.Live{Version: prev.Name, Previous: live.Version}, rev, c.Wait, sel)
}
