package journeyctl

import (
	"context"
	"fmt"
	"io"
	"sort"

	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/ruleset"
	"github.com/klantreis/journey/pkg/warehouse"
)

// RederiveDiffCmd is `rederive diff`.
type RederiveDiffCmd struct {
	Version string `help:"The version to compare with the live one (default: the newest version that is not live)."`
	Samples int    `default:"5" help:"Sample customer ids per stage pair."`
}

// StagePair is the customers whose stage would change from From to To.
type StagePair struct {
	From    string   `json:"from"`
	To      string   `json:"to"`
	Count   int      `json:"count"`
	Samples []string `json:"sample_ids"`
}

// DiffResult is what `rederive diff` prints.
type DiffResult struct {
	From      string      `json:"from"`
	To        string      `json:"to"`
	FromRules string      `json:"from_rules"`
	ToRules   string      `json:"to_rules"`
	Changed   int         `json:"changed"`
	Unchanged int         `json:"unchanged"`
	Pairs     []StagePair `json:"pairs"`
}

// Run compares the live version's current stages with the version's.
func (c *RederiveDiffCmd) Run(ctx context.Context, env *Env) error {
	if c.Samples < 0 {
		return usagef("--samples must not be negative")
	}
	ops, live, _, err := env.opsLive(ctx)
	if err != nil {
		return err
	}
	target, err := env.pickTarget(ctx, ops, c.Version, live)
	if err != nil {
		return err
	}
	from, err := env.version(ctx, ops, live.Version)
	if err != nil {
		return err
	}
	db, err := env.DB(ctx)
	if err != nil {
		return err
	}
	res, err := diffStages(ctx, db, from.Version, target.Version, c.Samples)
	if err != nil {
		return err
	}
	return env.emit(res, func(w io.Writer) { res.print(w) })
}

// pickTarget is the named version, or the newest that is not live.
func (e *Env) pickTarget(ctx context.Context, ops *ruleset.Store, name string, live ruleset.Live) (ruleset.Record, error) {
	if name != "" {
		return e.version(ctx, ops, name)
	}
	recs, err := ops.List(ctx)
	if err != nil {
		return ruleset.Record{}, err
	}
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Name != live.Version {
			return recs[i], nil
		}
	}
	return ruleset.Record{}, fmt.Errorf("%w: no re-derived version besides the live %s; run journeyctl rederive start first", ErrNotFound, live.Version)
}

// diffStages merges the two versions' stages by customer id. A customer
// one side lacks is in stage none there.
func diffStages(ctx context.Context, db *warehouse.DB, from, to ruleset.Version, samples int) (DiffResult, error) {
	res := DiffResult{From: from.Name, To: to.Name, FromRules: from.Spec, ToRules: to.Spec}
	a, err := stageMap(ctx, db, from)
	if err != nil {
		return res, err
	}
	b, err := stageMap(ctx, db, to)
	if err != nil {
		return res, err
	}
	ids := make([]string, 0, len(a))
	for id := range a {
		ids = append(ids, id)
	}
	for id := range b {
		if _, ok := a[id]; !ok {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	pairs := map[[2]string]*StagePair{}
	for _, id := range ids {
		sa, sb := stageOr(a, id), stageOr(b, id)
		if sa == sb {
			res.Unchanged++
			continue
		}
		res.Changed++
		p := pairs[[2]string{sa, sb}]
		if p == nil {
			p = &StagePair{From: sa, To: sb, Samples: []string{}}
			pairs[[2]string{sa, sb}] = p
		}
		p.Count++
		if len(p.Samples) < samples {
			p.Samples = append(p.Samples, id)
		}
	}
	for _, p := range pairs {
		res.Pairs = append(res.Pairs, *p)
	}
	sort.Slice(res.Pairs, func(i, j int) bool {
		x, y := res.Pairs[i], res.Pairs[j]
		if x.Count != y.Count {
			return x.Count > y.Count
		}
		if x.From != y.From {
			return x.From < y.From
		}
		return x.To < y.To
	})
	if res.Pairs == nil {
		res.Pairs = []StagePair{}
	}
	return res, nil
}

// stageMap reads a version's current stage per customer. It holds one
// entry per customer in memory (about 100 bytes each).
func stageMap(ctx context.Context, db *warehouse.DB, v ruleset.Version) (map[string]string, error) {
	vt, err := db.Variant(v.TableSuffix())
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	err = vt.Stages(ctx, func(id, stage string) error {
		m[id] = stage
		return nil
	})
	return m, err
}

func stageOr(m map[string]string, id string) string {
	if s, ok := m[id]; ok {
		return s
	}
	return string(journey.StageNone)
}

func (r DiffResult) print(w io.Writer) {
	fmt.Fprintf(w, "rederive diff %s (%s) -> %s (%s): %d customers change, %d unchanged\n",
		r.From, r.FromRules, r.To, r.ToRules, r.Changed, r.Unchanged)
	for _, p := range r.Pairs {
		fmt.Fprintf(w, "  %d customers: %s→%s", p.Count, p.From, p.To)
		if len(p.Samples) > 0 {
			fmt.Fprintf(w, "  e.g. %v", p.Samples)
		}
		fmt.Fprintln(w)
	}
}
