package journeyctl

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/klantreis/journey/pkg/deadletter"
	"github.com/klantreis/journey/pkg/warehouse"
)

// ExtRedrive is the extension a redriven event carries (deadletter.ExtRedrive).
const ExtRedrive = deadletter.ExtRedrive

// DeadSelection names dead letters by sequence or by filter.
type DeadSelection struct {
	Seqs []uint64 `arg:"" optional:"" name:"seq" help:"DEADLETTER sequences (from list)."`
	DeadFilter
	All bool `help:"Select every dead letter (when no sequence or filter is given)."`
}

func (s DeadSelection) sel() deadletter.Selection {
	return deadletter.Selection{Seqs: s.Seqs, Filter: s.filter(), All: s.All}
}

// DeadlettersRedriveCmd is `deadletters redrive`.
type DeadlettersRedriveCmd struct {
	DeadSelection
	BodyFile string `help:"A fixed body (the event's data, or a whole structured CloudEvent if the dead letter was one) for the one selected dead letter." type:"existingfile"`
	DryRun   bool   `help:"Validate only: say what would be redriven and what is still invalid."`
}

// RedriveResult is one dead letter's outcome.
type RedriveResult struct {
	Seq     uint64 `json:"seq"`
	Source  string `json:"source,omitempty"`
	ID      string `json:"id,omitempty"`
	Outcome string `json:"outcome"` // redriven, same_event (another dead letter of this event was), still_invalid, would_redrive
	Error   string `json:"error,omitempty"`
}

// Run re-validates each selected dead letter under the current schema and
// republishes it to TOUCHPOINTS with its original (source, id): the
// writer's identity check makes it land once whatever was stored before.
// Then the dead letter is marked redriven (a deadletter_resolutions row) and
// removed from DEADLETTER, in that order, so a crash in between leaves it
// listed and a second redrive is harmless. Still-invalid ones stay and the
// command exits 3.
func (c *DeadlettersRedriveCmd) Run(ctx context.Context, env *Env) error {
	js, err := env.JS(ctx)
	if err != nil {
		return err
	}
	var body []byte
	if c.BodyFile != "" {
		if body, err = os.ReadFile(c.BodyFile); err != nil {
			return fmt.Errorf("%w: --body-file: %v", ErrUsage, err)
		}
	}
	var db *warehouse.DB
	if !c.DryRun {
		if db, err = env.DB(ctx); err != nil {
			return err
		}
	}
	ops := env.deadOps(js, db)
	sel, err := ops.Resolve(ctx, c.sel())
	if err != nil {
		return deadErr(err)
	}
	results, counts, err := ops.Redrive(ctx, sel, body, c.DryRun, env.Actor())
	if err != nil {
		return deadErr(err)
	}
	if !c.DryRun {
		if err := env.audit(ctx, Audit{Action: "deadletters.redrive", Selection: c.sel().Audit(), Counts: counts}); err != nil {
			return err
		}
	}
	if err := env.emit(map[string]any{"results": results, "counts": counts}, func(w io.Writer) {
		for _, r := range results {
			fmt.Fprintf(w, "%d\t%s\t%s %s\t%s\n", r.Seq, r.Outcome, r.Source, r.ID, r.Error)
		}
		fmt.Fprintf(w, "%s\n", countLine(counts))
	}); err != nil {
		return err
	}
	if counts["still_invalid"] > 0 {
		return fmt.Errorf("%w: %d of %d dead letters are still invalid; fix them with --body-file", ErrVerify, counts["still_invalid"], len(sel))
	}
	return nil
}

func countLine(counts map[string]int) string {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.Itoa(counts[k])
	}
	return strings.Join(parts, " ")
}

func sortStrings(s []string) { sort.Strings(s) }

// DeadlettersPurgeCmd is `deadletters purge`.
type DeadlettersPurgeCmd struct {
	DeadSelection
	Reason string `required:"" help:"Why these dead letters are dropped (kept in the audit trail)."`
}

// Run removes the selected dead letters, recording each as purged.
func (c *DeadlettersPurgeCmd) Run(ctx context.Context, env *Env) error {
	if strings.TrimSpace(c.Reason) == "" {
		return usagef("--reason must say why")
	}
	js, db, err := env.both(ctx)
	if err != nil {
		return err
	}
	ops := env.deadOps(js, db)
	sel, err := ops.Resolve(ctx, c.sel())
	if err != nil {
		return deadErr(err)
	}
	counts, err := ops.Purge(ctx, sel, c.Reason, env.Actor())
	if err != nil {
		return deadErr(err)
	}
	selection := c.sel().Audit()
	selection["reason"] = c.Reason
	if err := env.audit(ctx, Audit{Action: "deadletters.purge", Selection: selection, Counts: counts}); err != nil {
		return err
	}
	return env.emit(map[string]any{"counts": counts}, func(w io.Writer) { fmt.Fprintf(w, "purged=%d\n", len(sel)) })
}
