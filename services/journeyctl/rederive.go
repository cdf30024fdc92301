package journeyctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/ruleset"
)

// RederiveCmd is `journeyctl rederive`: project a new rules version into
// shadow state beside the live one, diff the two, switch, roll back.
type RederiveCmd struct {
	Start    RederiveStartCmd    `cmd:"" help:"Project the whole touchpoint stream with new thresholds into a shadow bucket and shadow tables."`
	Diff     RederiveDiffCmd     `cmd:"" help:"What a switch would change: customers per stage pair, with sample ids."`
	Switch   RederiveSwitchCmd   `cmd:"" help:"Make a re-derived version live: the api, dashboard and projector follow."`
	Rollback RederiveRollbackCmd `cmd:"" help:"Make the previously live version live again."`
	List     RederiveListCmd     `cmd:"" help:"The rules versions and which one is live."`
}

// ops opens the JOURNEY_OPS bucket.
func (e *Env) ops(ctx context.Context) (*ruleset.Store, error) {
	js, err := e.JS(ctx)
	if err != nil {
		return nil, err
	}
	return ruleset.Open(ctx, js, e.Config.Stream.Replicas)
}

// opsLive opens the JOURNEY_OPS bucket and reads the live rules version
// with its revision.
func (e *Env) opsLive(ctx context.Context) (*ruleset.Store, ruleset.Live, uint64, error) {
	ops, err := e.ops(ctx)
	if err != nil {
		return nil, ruleset.Live{}, 0, err
	}
	live, rev, err := ops.Live(ctx)
	return ops, live, rev, err
}

// baseVersion is v1: the thresholds JOURNEY_PROJECTOR_* configure.
func (e *Env) baseVersion() ruleset.Version {
	r := e.Config.ProjectorSettings.Rules()
	return ruleset.Version{Name: ruleset.Base, Spec: ruleset.FormatSpec(r), Rules: r}
}

// version resolves a name to its version (the base included).
func (e *Env) version(ctx context.Context, ops *ruleset.Store, name string) (ruleset.Record, error) {
	if name == ruleset.Base {
		return ruleset.Record{Version: e.baseVersion(), State: ruleset.StateReady}, nil
	}
	r, _, err := ops.Get(ctx, name)
	if errors.Is(err, ruleset.ErrNotFound) {
		return r, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return r, err
}

// RederiveStartCmd is `rederive start`.
type RederiveStartCmd struct {
	Rules string `required:"" help:"New thresholds over the configured ones, e.g. 'loyal=2/365d' or 'loyal=4/180d,inactive=270d'."`
	Name  string `help:"Version name (default: the next free vN). Naming an existing version resumes it; its thresholds must match."`
}

// StartResult is what `rederive start` prints.
type StartResult struct {
	Version string `json:"version"`
	Spec    string `json:"spec"`
	Rules   string `json:"rules_version"`
	Resumed bool   `json:"resumed"`
	CatchUp
	Bucket    string `json:"bucket"`
	Tables    string `json:"tables"`
	NextSteps string `json:"next"`
}

// Run creates (or resumes) the version and projects the stream into it.
func (c *RederiveStartCmd) Run(ctx context.Context, env *Env) (err error) {
	base := env.Config.ProjectorSettings.Rules()
	rules, err := ruleset.ParseSpec(c.Rules, base)
	if err != nil {
		return usagef("--rules: %v", err)
	}
	if c.Name != "" && (!ruleset.ValidName(c.Name) || c.Name == ruleset.Base) {
		return usagef("--name %q: want v2, v3, ... (v1 is the base)", c.Name)
	}
	ops, err := env.ops(ctx)
	if err != nil {
		return err
	}
	rec, rev, resumed, err := c.allocate(ctx, env, ops, rules)
	if err != nil {
		return err
	}
	sel := map[string]any{"version": rec.Name, "spec": rec.Spec, "rules_version": rules.Version(), "resumed": resumed}
	defer func() { err = env.auditResult(ctx, "rederive.start", sel, nil, err) }()
	cu, err := env.catchUp(ctx, rec.Version, "rederive "+rec.Name)
	if err != nil {
		return err
	}
	rec.State, rec.Updated, rec.Events, rec.Positions = ruleset.StateReady, env.now().UTC(), rec.Events+cu.Events, cu.Positions
	if _, err := ops.Put(ctx, rec, rev); err != nil {
		return err
	}
	sel["counts"] = cu.counts()
	res := StartResult{Version: rec.Name, Spec: rec.Spec, Rules: rules.Version(), Resumed: resumed, CatchUp: cu,
		Bucket: rec.Bucket(env.Config.ProjectorSettings.Bucket), Tables: "customer_state" + rec.TableSuffix() + ", stage_transitions" + rec.TableSuffix() +
			", satisfaction_responses" + rec.TableSuffix(),
		NextSteps: "journeyctl rederive diff --version " + rec.Name + "; then journeyctl rederive switch --version " + rec.Name}
	return env.emit(res, func(w io.Writer) {
		fmt.Fprintf(w, "rederive %s (%s): %d events of %d partitions applied, %d customer records written, %d derived events withheld\n",
			res.Version, res.Spec, cu.Events, len(cu.Positions), cu.Customers, cu.Withheld)
		fmt.Fprintf(w, "  state: %s; tables: %s\n  ready. next: %s\n", res.Bucket, res.Tables, res.NextSteps)
	})
}

// allocate returns the version record to fill: a new one, or the named or
// same-thresholds one that is not live (a resumed run).
func (c *RederiveStartCmd) allocate(ctx context.Context, env *Env, ops *ruleset.Store, rules journey.Rules) (ruleset.Record, uint64, bool, error) {
	live, _, err := ops.Live(ctx)
	if err != nil {
		return ruleset.Record{}, 0, false, err
	}
	all, err := ops.List(ctx)
	if err != nil {
		return ruleset.Record{}, 0, false, err
	}
	var names []string
	for _, r := range all {
		names = append(names, r.Name)
		if c.Name == "" && r.Rules == rules && r.Name == live.Version {
			return r, 0, false, usagef("version %s has these thresholds and is live", r.Name)
		}
		if (c.Name == "" && r.Rules == rules && r.Name != live.Version) || r.Name == c.Name {
			if r.Rules != rules {
				return r, 0, false, usagef("version %s has thresholds %s, not %s", r.Name, r.Spec, ruleset.FormatSpec(rules))
			}
			if r.Name == live.Version {
				return r, 0, false, usagef("version %s is live; re-deriving it would change what the api serves", r.Name)
			}
			_, rev, err := ops.Get(ctx, r.Name)
			return r, rev, true, err
		}
	}
	name := c.Name
	if name == "" {
		name = ruleset.Next(names)
	}
	now := env.now().UTC()
	rec := ruleset.Record{Version: ruleset.Version{Name: name, Spec: ruleset.FormatSpec(rules), Rules: rules},
		State: ruleset.StateRunning, Created: now, Updated: now}
	rev, err := ops.Put(ctx, rec, 0)
	return rec, rev, false, err
}

// auditResult audits an action with its outcome and returns err, or the
// audit's error when the action succeeded but its audit failed.
func (e *Env) auditResult(ctx context.Context, action string, sel map[string]any, counts map[string]int, err error) error {
	a := Audit{Action: action, Selection: sel, Counts: counts}
	if c, ok := sel["counts"].(map[string]int); ok && counts == nil {
		a.Counts = c
		delete(sel, "counts")
	}
	if err != nil {
		a.Outcome, a.Error = "failed", err.Error()
	}
	// The audit gets its own time: an interrupted action is audited too.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if aerr := e.audit(actx, a); aerr != nil && err == nil {
		return aerr
	}
	return err
}

// RederiveListCmd is `rederive list`.
type RederiveListCmd struct{}

// ListResult is what `rederive list` prints.
type ListResult struct {
	Live     ruleset.Live     `json:"live"`
	Versions []ruleset.Record `json:"versions"`
}

// Run prints the versions.
func (c *RederiveListCmd) Run(ctx context.Context, env *Env) error {
	ops, live, _, err := env.opsLive(ctx)
	if err != nil {
		return err
	}
	recs, err := ops.List(ctx)
	if err != nil {
		return err
	}
	all := append([]ruleset.Record{{Version: env.baseVersion(), State: ruleset.StateReady}}, recs...)
	return env.emit(ListResult{Live: live, Versions: all}, func(w io.Writer) {
		fmt.Fprintf(w, "%-6s %-8s %-36s %8s\n", "", "STATE", "RULES", "EVENTS")
		for _, r := range all {
			mark := ""
			if r.Name == live.Version {
				mark = "live"
			}
			fmt.Fprintf(w, "%-4s %-4s %-8s %-36s %8d\n", r.Name, mark, r.State, r.Spec, r.Events)
		}
	})
}
