package journeyctl

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
)

// ExtRedrive is the extension a redriven event carries: the DEADLETTER
// sequence it came from. The content hash leaves extensions out, so the
// writer's identity check still sees the original (source, id).
const ExtRedrive = "redrive"

// DeadSelection names dead letters by sequence or by filter.
type DeadSelection struct {
	Seqs []uint64 `arg:"" optional:"" name:"seq" help:"DEADLETTER sequences (from list)."`
	DeadFilter
	All bool `help:"Select every dead letter (when no sequence or filter is given)."`
}

// resolve returns the selected dead letters with headers and body.
func (s DeadSelection) resolve(ctx context.Context, js jetstream.JetStream) ([]DeadLetterView, error) {
	if len(s.Seqs) == 0 && s.empty() && !s.All {
		return nil, usagef("name dead letters by sequence, by --consumer/--class/--since/--until, or give --all")
	}
	seqs := s.Seqs
	if len(seqs) == 0 {
		list, err := listDead(ctx, js, s.DeadFilter)
		if err != nil {
			return nil, err
		}
		for _, v := range list {
			seqs = append(seqs, v.Seq)
		}
	}
	out := make([]DeadLetterView, 0, len(seqs))
	for _, seq := range seqs {
		v, err := getDead(ctx, js, seq)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (s DeadSelection) selection() map[string]any {
	m := s.DeadFilter.selection()
	if len(s.Seqs) > 0 {
		m["seqs"] = s.Seqs
	}
	if s.All {
		m["all"] = true
	}
	return m
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
	sel, err := c.resolve(ctx, js)
	if err != nil {
		return err
	}
	var body []byte
	if c.BodyFile != "" {
		if len(sel) != 1 {
			return usagef("--body-file fixes one dead letter; %d are selected", len(sel))
		}
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
	counts := map[string]int{"selected": len(sel)}
	results := make([]RedriveResult, 0, len(sel))
	done := map[string]bool{}
	for _, v := range sel {
		ev, err := redriveEvent(ctx, js, v, body, env)
		r := RedriveResult{Seq: v.Seq, Source: ev.Source, ID: ev.ID}
		switch {
		case err != nil:
			r.Outcome, r.Error = "still_invalid", err.Error()
		case c.DryRun:
			r.Outcome = "would_redrive"
		case done[ev.Source+"\x00"+ev.ID]:
			r.Outcome = "same_event"
		default:
			if err := republish(ctx, js, &ev, v.Seq); err != nil {
				return err
			}
			done[ev.Source+"\x00"+ev.ID] = true
			r.Outcome = "redriven"
		}
		if !c.DryRun && err == nil {
			if err := resolveDead(ctx, js, db, env, v, ev.Source, ev.ID, "redriven", ""); err != nil {
				return err
			}
		}
		counts[r.Outcome]++
		results = append(results, r)
	}
	if !c.DryRun {
		if err := env.audit(ctx, Audit{Action: "deadletters.redrive", Selection: c.selection(), Counts: counts}); err != nil {
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

// redriveEvent rebuilds the event of a dead letter (with body instead of
// its own when given; from TOUCHPOINTS when the dead letter's copy was
// truncated) and validates it as the collector would today.
func redriveEvent(ctx context.Context, js jetstream.JetStream, v DeadLetterView, body []byte, env *Env) (touchpoint.Event, error) {
	h := nats.Header{}
	for k, vals := range v.Headers {
		if strings.HasPrefix(k, "Journey-") || k == jetstream.MsgIDHeader {
			continue
		}
		h[k] = vals
	}
	data := []byte(v.Body)
	switch {
	case body != nil:
		data = body
	case v.Truncated > 0:
		if !strings.HasPrefix(v.Subject, "touchpoint.") {
			return touchpoint.Event{}, fmt.Errorf("the dead letter's body was truncated and its original is not in %s; give --body-file", stream.TouchpointStream)
		}
		s, err := js.Stream(ctx, stream.TouchpointStream)
		if err != nil {
			return touchpoint.Event{}, err
		}
		m, err := s.GetMsg(ctx, v.OriginalSeq)
		if err != nil {
			return touchpoint.Event{}, fmt.Errorf("the body was truncated and the original (seq %d) is gone: %v; give --body-file", v.OriginalSeq, err)
		}
		h, data = m.Header, m.Data
	}
	ev, err := stream.DecodeMsg(h, data)
	if err != nil {
		return ev, fmt.Errorf("undecodable: %v", err)
	}
	if _, err := touchpoint.Validate(&ev, env.now()); err != nil {
		return ev, fmt.Errorf("invalid: %v", err)
	}
	return ev, nil
}

// republish puts ev back on its publish subject with the redrive marker.
// The message id names the dead letter: the original's id may still be in
// the duplicate window, where the broker would drop the fixed event.
func republish(ctx context.Context, js jetstream.JetStream, ev *touchpoint.Event, deadSeq uint64) error {
	if ev.Extensions == nil {
		ev.Extensions = map[string]string{}
	}
	ev.Extensions[ExtRedrive] = strconv.FormatUint(deadSeq, 10)
	m, err := stream.NewFactMsg(ev)
	if err != nil {
		return err
	}
	m.Header.Set(jetstream.MsgIDHeader, stream.MsgID(ev.Source, ev.ID)+"-redrive-"+strconv.FormatUint(deadSeq, 10))
	if _, err := js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("journeyctl: republish dead letter %d: %w", deadSeq, err)
	}
	return nil
}

// resolveDead records what became of a dead letter, then removes it from
// DEADLETTER.
func resolveDead(ctx context.Context, js jetstream.JetStream, db *warehouse.DB, env *Env, v DeadLetterView, source, id, resolution, reason string) error {
	if source == "" {
		source, id = v.Source, v.ID
	}
	err := db.InsertRow(ctx, `INSERT INTO deadletter_resolutions (at, consumer, stream_seq, dead_seq, source, id, resolution, reason, actor)`,
		env.now().UTC(), v.Consumer, v.OriginalSeq, v.Seq, source, id, resolution, reason, env.Actor())
	if err != nil {
		return fmt.Errorf("journeyctl: record dead letter %d as %s: %w", v.Seq, resolution, err)
	}
	s, err := js.Stream(ctx, stream.DeadLetterStream)
	if err != nil {
		return err
	}
	if err := s.DeleteMsg(ctx, v.Seq); err != nil {
		return fmt.Errorf("journeyctl: remove dead letter %d: %w", v.Seq, err)
	}
	return nil
}

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
	js, err := env.JS(ctx)
	if err != nil {
		return err
	}
	sel, err := c.resolve(ctx, js)
	if err != nil {
		return err
	}
	db, err := env.DB(ctx)
	if err != nil {
		return err
	}
	for _, v := range sel {
		if err := resolveDead(ctx, js, db, env, v, "", "", "purged", c.Reason); err != nil {
			return err
		}
	}
	selection := c.selection()
	selection["reason"] = c.Reason
	counts := map[string]int{"purged": len(sel)}
	if err := env.audit(ctx, Audit{Action: "deadletters.purge", Selection: selection, Counts: counts}); err != nil {
		return err
	}
	return env.emit(map[string]any{"counts": counts}, func(w io.Writer) { fmt.Fprintf(w, "purged=%d\n", len(sel)) })
}
