package journeyctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/suppression"
)

// ReplayCmd is `journeyctl replay`: read a slice of TOUCHPOINTS and
// re-deliver it to a subject prefix, the warehouse or the projector
// (docs/operations.md, "Replay").
type ReplayCmd struct {
	From      time.Time `help:"Only events whose CloudEvents time is at or after this (RFC 3339)." format:"2006-01-02T15:04:05Z07:00"`
	To        []toValue `help:"An RFC 3339 time: only events whose CloudEvents time is before it. Or a target: warehouse, projector (same as --to-warehouse, --to-projector)." sep:"none" placeholder:"TIME|TARGET"`
	Since     time.Time `help:"Only messages JetStream stored at or after this (RFC 3339)." format:"2006-01-02T15:04:05Z07:00"`
	Until     time.Time `help:"Only messages JetStream stored before this (RFC 3339)." format:"2006-01-02T15:04:05Z07:00"`
	Customer  []string  `help:"Only this customer id (repeatable)." sep:"none"`
	Kind      []string  `help:"Only this kind: visit, quote, order, complaint, survey, offboarded (repeatable)." sep:"none"`
	Source    string    `help:"Only events of this CloudEvents source."`
	ToSubject string    `name:"to-subject" help:"Re-publish each event as a CloudEvent to PREFIX.<partition>.<kind>.<customer-key> (a JetStream stream must capture it)." placeholder:"PREFIX"`
	// The journey targets: copies go to the REPLAY stream, which a writer
	// or projector with JOURNEY_*_INPUT=replay consumes.
	ToWarehouse bool          `name:"to-warehouse" help:"Re-deliver to the writer (events table): copies on replay.warehouse.>, read by a writer with JOURNEY_WRITER_INPUT=replay."`
	ToProjector bool          `name:"to-projector" help:"Re-deliver to the projector: copies on replay.projector.>, read by a projector with JOURNEY_PROJECTOR_INPUT=replay."`
	DryRun      bool          `help:"Count what would be replayed, per kind and per partition; send nothing."`
	Rate        float64       `help:"At most this many events per second (default 0: unlimited)." placeholder:"N"`
	ID          string        `help:"Name of the replay (default: a hash of the selection and target, so the same command continues it)."`
	Resume      string        `help:"Continue the replay with this id, with the selection and target it was started with." placeholder:"ID"`
	Checkpoint  time.Duration `help:"How often the position is recorded; a resume repeats at most this much, which the duplicate window drops." default:"1s"`
	Window      int           `help:"Publishes awaiting their ack at once." default:"256" hidden:""`
}

// toValue is one --to: an event-time bound or a target name.
type toValue struct {
	Time   time.Time
	Target string
}

// UnmarshalText parses an RFC 3339 time or a target name.
func (v *toValue) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	switch s {
	case stream.ReplayWarehouse, stream.ReplayProjector:
		v.Target = s
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("--to %q is neither an RFC 3339 time (e.g. 2026-01-01T00:00:00Z) nor a target (warehouse, projector)", s)
	}
	v.Time = t
	return nil
}

// plan is what the flags ask for, checked.
type plan struct {
	sel     Selection
	target  string // subject:<prefix>, warehouse, projector
	subject string // the prefix copies go under
}

func (c *ReplayCmd) plan() (plan, error) {
	p := plan{sel: Selection{From: c.From, Since: c.Since, Until: c.Until, Customers: c.Customer, Kinds: c.Kind, Source: c.Source}}
	var targets []string
	for _, v := range c.To {
		switch {
		case v.Target != "":
			targets = append(targets, v.Target)
		case !p.sel.To.IsZero():
			return p, usagef("--to gives the end of the event time once")
		default:
			p.sel.To = v.Time
		}
	}
	if c.ToWarehouse {
		targets = append(targets, stream.ReplayWarehouse)
	}
	if c.ToProjector {
		targets = append(targets, stream.ReplayProjector)
	}
	if c.ToSubject != "" {
		if err := checkPrefix(c.ToSubject); err != nil {
			return p, err
		}
		targets = append(targets, "subject:"+c.ToSubject)
	}
	switch {
	case len(targets) > 1:
		return p, usagef("give one target, not %s", strings.Join(targets, " and "))
	case len(targets) == 0 && !c.DryRun:
		return p, usagef("give a target (--to-subject PREFIX, --to warehouse or --to projector) or --dry-run")
	case len(targets) == 1:
		p.target = targets[0]
		if sub, ok := strings.CutPrefix(p.target, "subject:"); ok {
			p.subject = sub
		} else {
			p.subject = stream.ReplayPrefix(p.target)
		}
	}
	if c.Rate < 0 {
		return p, usagef("--rate must be 0 (unlimited) or positive, got %g", c.Rate)
	}
	if c.Checkpoint < 10*time.Millisecond {
		return p, usagef("--checkpoint must be at least 10ms, got %s", c.Checkpoint)
	}
	return p, p.sel.normalize()
}

// checkPrefix refuses a prefix that is not a plain subject, or that would
// write into journey's own streams: a replay onto TOUCHPOINTS would store
// every fact twice, and DERIVED, DEADLETTER and OPS have their own writers.
func checkPrefix(p string) error {
	if strings.HasPrefix(p, "$") || strings.HasPrefix(p, ".") || strings.HasSuffix(p, ".") || strings.Contains(p, "..") ||
		strings.ContainsAny(p, "*> \t\r\n") {
		return usagef("--to-subject %q is not a subject prefix (dot-separated tokens, no wildcards or spaces)", p)
	}
	first, _, _ := strings.Cut(p, ".")
	switch first {
	case "touchpoint", "customer", "deadletter", "ops":
		return usagef("--to-subject %q would publish into journey's own %s subjects; replay to the warehouse or projector with --to warehouse|projector", p, first)
	case "replay":
		return usagef("--to-subject %q: the replay stream is written by --to warehouse|projector only", p)
	}
	return nil
}

// Run plans the replay, then counts it (--dry-run) or runs it: from the
// start, or from its recorded position when it ran before.
func (c *ReplayCmd) Run(ctx context.Context, env *Env) error {
	var (
		p   plan
		err error
	)
	if c.Resume != "" {
		if c.Rate < 0 {
			return usagef("--rate must be 0 (unlimited) or positive, got %g", c.Rate)
		}
		if len(c.To) > 0 || c.ToSubject != "" || c.ToWarehouse || c.ToProjector || c.DryRun || c.ID != "" ||
			!c.From.IsZero() || !c.Since.IsZero() || !c.Until.IsZero() || len(c.Customer) > 0 || len(c.Kind) > 0 || c.Source != "" {
			return usagef("--resume takes the selection and target from the replay's record; give no other selection or target")
		}
	} else if p, err = c.plan(); err != nil {
		return err
	}
	js, err := env.JS(ctx)
	if err != nil {
		return err
	}
	if c.DryRun {
		return c.dryRun(ctx, env, p)
	}
	kv, err := env.opsKV(ctx)
	if err != nil {
		return err
	}
	st, err := c.state(ctx, env, kv, p)
	if err != nil {
		return err
	}
	if st.State == replayDone {
		fmt.Fprintf(env.Err, "replay %s was done at %s; give --id to replay the same selection again\n", st.ID, st.Finished.Format(time.RFC3339))
		return env.emit(replayReport(st, false), func(w io.Writer) { printReplay(w, st) })
	}
	if st.Target == stream.ReplayWarehouse || st.Target == stream.ReplayProjector {
		warnNoReader(ctx, js, st.Target, env.Err)
	}
	r := &replayer{env: env, js: js, kv: kv, st: st, rate: st.Rate, checkpoint: c.Checkpoint, window: max(c.Window, 1)}
	runErr := r.run(ctx)
	audit := Audit{Action: "replay", Selection: replaySelection(st), Counts: st.Counts.flat()}
	audit.Counts["last_seq"], audit.Counts["end_seq"], audit.Counts["resumes"] = int(st.LastSeq), int(st.EndSeq), st.Resumes
	if runErr != nil {
		audit.Outcome, audit.Error = "failed", runErr.Error()
	}
	if err := env.audit(context.WithoutCancel(ctx), audit); err != nil && runErr == nil {
		runErr = err
	}
	if runErr != nil {
		return runErr
	}
	return env.emit(replayReport(st, false), func(w io.Writer) { printReplay(w, st) })
}

// state loads the replay's record or starts a new one (fixing the slice's
// end at the stream's current last sequence).
func (c *ReplayCmd) state(ctx context.Context, env *Env, kv jetstream.KeyValue, p plan) (*ReplayState, error) {
	id := c.Resume
	if id == "" {
		id = c.ID
	}
	if id == "" {
		id = replayID(p.sel, p.target)
	}
	st, err := loadReplay(ctx, kv, id)
	if err != nil {
		return nil, err
	}
	switch {
	case st == nil && c.Resume != "":
		return nil, fmt.Errorf("%w: no replay %q in %s", ErrNotFound, id, OpsBucket)
	case st == nil:
		end, err := lastSeq(ctx, env)
		if err != nil {
			return nil, err
		}
		now := env.now().UTC()
		st = &ReplayState{ID: id, Selection: p.sel, Target: p.target, Subject: p.subject, Rate: c.Rate, EndSeq: end,
			State: replayRunning, Actor: env.Actor(), Started: now}
		st.Counts.init()
		return st, nil
	case c.Resume == "" && (replayID(st.Selection, st.Target) != replayID(p.sel, p.target)):
		return nil, usagef("replay %q exists with another selection or target (%s); pick another --id", id, st.Target)
	}
	if st.State == replayDone {
		return st, nil
	}
	st.Resumes++
	if c.Resume == "" || c.Rate > 0 {
		st.Rate = c.Rate // the rate is not part of the slice; the latest command sets it
	}
	return st, nil
}

func lastSeq(ctx context.Context, env *Env) (uint64, error) {
	js, err := env.JS(ctx)
	if err != nil {
		return 0, err
	}
	s, err := js.Stream(ctx, stream.TouchpointStream)
	if err != nil {
		return 0, fmt.Errorf("journeyctl: stream %s: %w", stream.TouchpointStream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("journeyctl: stream %s: %w", stream.TouchpointStream, err)
	}
	return info.State.LastSeq, nil
}

func replaySelection(st *ReplayState) map[string]any {
	m := st.Selection.Map()
	// The audit keeps no customer id (the erasure leaves it as it is,
	// docs/privacy.md): a replay of named customers names them by the
	// suppression list's hash.
	if len(st.Selection.Customers) > 0 {
		hashed := make([]string, len(st.Selection.Customers))
		for i, c := range st.Selection.Customers {
			hashed[i] = "sha256:" + suppression.Hash(c)
		}
		m["customers"] = hashed
	}
	m["replay_id"], m["target"], m["subject"] = st.ID, st.Target, st.Subject
	if st.Rate > 0 {
		m["rate"] = st.Rate
	}
	return m
}

var errReplayStopped = errors.New("journeyctl: replay interrupted; run the same command (or --resume ID) to continue")
