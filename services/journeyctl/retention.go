package journeyctl

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
)

// RetentionSettings are how long ClickHouse keeps each kind of touchpoint
// (JOURNEY_RETENTION_*; docs/privacy.md). 0, the default, keeps it until
// erasure; otherwise at least 24h. Durations are Go durations: 400 days is
// 9600h.
type RetentionSettings struct {
	Visit      time.Duration `envconfig:"VISIT" default:"0"`
	Quote      time.Duration `envconfig:"QUOTE" default:"0"`
	Order      time.Duration `envconfig:"ORDER" default:"0"`
	Complaint  time.Duration `envconfig:"COMPLAINT" default:"0"`
	Survey     time.Duration `envconfig:"SURVEY" default:"0"`
	Offboarded time.Duration `envconfig:"OFFBOARDED" default:"0"`
	// DeadLetters bounds events_dead.
	DeadLetters time.Duration `envconfig:"DEAD_LETTERS" default:"0"`
}

// Retention is the warehouse's form of the settings.
func (r RetentionSettings) Retention() warehouse.Retention {
	return warehouse.Retention{Kinds: map[touchpoint.Kind]time.Duration{
		touchpoint.KindVisit: r.Visit, touchpoint.KindQuote: r.Quote, touchpoint.KindOrder: r.Order,
		touchpoint.KindComplaint: r.Complaint, touchpoint.KindSurvey: r.Survey, touchpoint.KindOffboarded: r.Offboarded,
	}, DeadLetters: r.DeadLetters}
}

func (r RetentionSettings) validate() error {
	for name, d := range map[string]time.Duration{"VISIT": r.Visit, "QUOTE": r.Quote, "ORDER": r.Order, "COMPLAINT": r.Complaint,
		"SURVEY": r.Survey, "OFFBOARDED": r.Offboarded, "DEAD_LETTERS": r.DeadLetters} {
		if d < 0 || d > 0 && d < 24*time.Hour {
			return usagef("JOURNEY_RETENTION_%s must be 0 (keep) or at least 24h, got %s", name, d)
		}
	}
	if !r.Retention().Active() {
		return usagef("no retention is set (JOURNEY_RETENTION_VISIT, _QUOTE, _ORDER, _COMPLAINT, _SURVEY, _OFFBOARDED, _DEAD_LETTERS)")
	}
	return nil
}

// RetentionCmd expires what the retention settings say ClickHouse no
// longer keeps. It runs as admin: dropping partitions, mutations and TTLs
// are the admin role's (docs/security.md), so no service does it.
type RetentionCmd struct {
	Every time.Duration `help:"Run a pass every DURATION until stopped (a sidecar or the local stack); 0: one pass." placeholder:"DURATION"`
}

// RetentionResult is one pass.
type RetentionResult struct {
	At                time.Time         `json:"at"`
	DroppedPartitions []string          `json:"dropped_partitions"`
	Deleted           map[string]uint64 `json:"deleted"`
	TTL               string            `json:"ttl,omitempty"`
}

// Run applies the retention once, or every Every until ctx ends. A failed
// pass in a loop is reported and the next one retries.
func (c *RetentionCmd) Run(ctx context.Context, env *Env) error {
	if err := env.Config.Retention.validate(); err != nil {
		return err
	}
	if c.Every < 0 || c.Every > 0 && c.Every < time.Minute {
		return usagef("--every must be 0 or at least 1m, got %s", c.Every)
	}
	db, err := env.DB(ctx)
	if err != nil {
		return err
	}
	if c.Every == 0 {
		return c.pass(ctx, env, db)
	}
	for {
		// A mutation the server does not finish must not stall the loop:
		// a pass gets one interval (at least 10m), the next one resumes.
		pctx, cancel := context.WithTimeout(ctx, max(c.Every, 10*time.Minute))
		err := c.pass(pctx, env, db)
		cancel()
		if err != nil {
			fmt.Fprintln(env.Err, "journeyctl: retention pass failed; the next one retries:", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(c.Every):
		}
	}
}

func (c *RetentionCmd) pass(ctx context.Context, env *Env, db *warehouse.DB) error {
	at := env.now().UTC()
	rep, err := db.ApplyRetention(ctx, env.Config.Retention.Retention(), at)
	counts := map[string]int{"dropped_partitions": len(rep.DroppedPartitions)}
	for k, n := range rep.Deleted {
		counts["deleted "+k] = int(n)
	}
	a := Audit{Action: "retention", Selection: map[string]any{"settings": env.Config.Retention}, Counts: counts}
	if err != nil {
		a.Outcome, a.Error = "failed", err.Error()
	}
	if aerr := env.audit(ctx, a); aerr != nil && err == nil {
		err = aerr
	}
	if err != nil {
		return err
	}
	res := RetentionResult{At: at, DroppedPartitions: rep.DroppedPartitions, Deleted: rep.Deleted, TTL: rep.TTL}
	if res.DroppedPartitions == nil {
		res.DroppedPartitions = []string{}
	}
	return env.emit(res, func(w io.Writer) {
		fmt.Fprintf(w, "retention at %s: dropped %d partitions %v, deleted %v\n", at.Format(time.RFC3339), len(rep.DroppedPartitions), rep.DroppedPartitions, rep.Deleted)
		if rep.TTL != "" {
			fmt.Fprint(w, "set ", rep.TTL)
		}
	})
}
