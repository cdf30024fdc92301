// Package deadletter is the operator's side of the DEADLETTER stream:
// list and show dead letters, redrive them (re-validated under the
// current schema, or with a fixed body) so that each lands exactly once,
// and purge them with a reason. Each redrive or purge is recorded in
// deadletter_resolutions before the dead letter leaves the stream.
// journeyctl deadletters and the API's /v1/ops/deadletters use it; they
// audit the actions (pkg/audit).
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
)

// Errors.
var (
	// ErrNotFound: no dead letter at that sequence.
	ErrNotFound = errors.New("deadletter: not found")
	// ErrSelection: the request selects nothing it may (no sequence,
	// filter or all; a fixed body for more than one; a purge without a
	// reason).
	ErrSelection = errors.New("deadletter: bad selection")
)

// ExtRedrive is the extension a redriven event carries: the DEADLETTER
// sequence it came from. The content hash leaves extensions out, so the
// writer's identity check still sees the original (source, id).
const ExtRedrive = "redrive"

// Filter selects dead letters; the zero Filter selects all.
type Filter struct {
	Consumer string
	Class    string
	Since    time.Time // stored at or after
	Until    time.Time // stored before
}

// Selection is the filter as the audit trail names it.
func (f Filter) Selection() map[string]any {
	s := map[string]any{}
	if f.Consumer != "" {
		s["consumer"] = f.Consumer
	}
	if f.Class != "" {
		s["class"] = f.Class
	}
	if !f.Since.IsZero() {
		s["since"] = f.Since.UTC()
	}
	if !f.Until.IsZero() {
		s["until"] = f.Until.UTC()
	}
	return s
}

// Empty reports a filter that sets nothing.
func (f Filter) Empty() bool {
	return f.Consumer == "" && f.Class == "" && f.Since.IsZero() && f.Until.IsZero()
}

func (f Filter) match(v View) bool {
	return (f.Class == "" || v.Class == f.Class) && (f.Until.IsZero() || v.StoredAt.Before(f.Until)) &&
		(f.Since.IsZero() || !v.StoredAt.Before(f.Since))
}

// View is a dead letter as operators see it.
type View struct {
	Seq         uint64              `json:"seq"`
	StoredAt    time.Time           `json:"stored_at"`
	Consumer    string              `json:"consumer"`
	Class       string              `json:"class"`
	Reason      string              `json:"reason"`
	Subject     string              `json:"original_subject"`
	OriginalSeq uint64              `json:"original_seq"`
	Delivered   uint64              `json:"delivery_count"`
	Source      string              `json:"source,omitempty"`
	ID          string              `json:"id,omitempty"`
	Truncated   int                 `json:"truncated_from,omitempty"`
	Headers     map[string][]string `json:"headers,omitempty"`
	Body        string              `json:"body,omitempty"`
}

func viewOf(seq uint64, at time.Time, subject string, h nats.Header, data []byte, full bool) View {
	v := View{Seq: seq, StoredAt: at.UTC(), Consumer: h.Get(stream.HeaderDeadConsumer), Class: h.Get(stream.HeaderDeadClass),
		Reason: h.Get(stream.HeaderDeadReason), Subject: h.Get(stream.HeaderDeadSubject),
		Source: h.Get("ce-source"), ID: h.Get("ce-id")}
	if v.Consumer == "" {
		v.Consumer = strings.TrimPrefix(subject, "deadletter.")
	}
	v.OriginalSeq, _ = strconv.ParseUint(h.Get(stream.HeaderDeadSeq), 10, 64)
	v.Delivered, _ = strconv.ParseUint(h.Get(stream.HeaderDeadDelivered), 10, 64)
	v.Truncated, _ = strconv.Atoi(h.Get(stream.HeaderDeadTruncated))
	if full {
		v.Headers, v.Body = h, string(data)
	}
	return v
}

// Ops acts on the dead letters. DB may be nil for List, Get and dry runs.
type Ops struct {
	JS jetstream.JetStream
	DB *warehouse.DB
	// Now is the clock of validation and records (time.Now when nil).
	Now func() time.Time
}

func (o Ops) now() time.Time {
	if o.Now == nil {
		return time.Now()
	}
	return o.Now()
}

// List returns the dead letters f selects, oldest first, without headers
// and body.
func (o Ops) List(ctx context.Context, f Filter) ([]View, error) {
	var filters []string
	if f.Consumer != "" {
		filters = []string{stream.DeadLetterSubject(f.Consumer)}
	}
	out := []View{}
	err := scan(ctx, o.JS, stream.DeadLetterStream, filters, f.Since, func(m jetstream.Msg) error {
		md, _ := m.Metadata()
		v := viewOf(md.Sequence.Stream, md.Timestamp, m.Subject(), m.Headers(), nil, false)
		if f.match(v) {
			out = append(out, v)
		}
		return nil
	})
	return out, err
}

// Get fetches one dead letter, headers and body included, by its
// DEADLETTER sequence.
func (o Ops) Get(ctx context.Context, seq uint64) (View, error) {
	s, err := o.JS.Stream(ctx, stream.DeadLetterStream)
	if err != nil {
		return View{}, err
	}
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return View{}, fmt.Errorf("%w: no dead letter at sequence %d (redriven, purged or expired?)", ErrNotFound, seq)
	}
	if err != nil {
		return View{}, fmt.Errorf("deadletter: %d: %w", seq, err)
	}
	return viewOf(m.Sequence, m.Time, m.Subject, m.Header, m.Data, true), nil
}

// Selection names dead letters by sequence, by filter, or all.
type Selection struct {
	Seqs []uint64
	Filter
	All bool
}

// Audit is the selection as the audit trail names it.
func (s Selection) Audit() map[string]any {
	m := s.Filter.Selection()
	if len(s.Seqs) > 0 {
		m["seqs"] = s.Seqs
	}
	if s.All {
		m["all"] = true
	}
	return m
}

// Resolve returns the selected dead letters with headers and body.
func (o Ops) Resolve(ctx context.Context, s Selection) ([]View, error) {
	if len(s.Seqs) == 0 && s.Empty() && !s.All {
		return nil, fmt.Errorf("%w: name dead letters by sequence, by consumer/class/since/until, or select all", ErrSelection)
	}
	seqs := s.Seqs
	if len(seqs) == 0 {
		list, err := o.List(ctx, s.Filter)
		if err != nil {
			return nil, err
		}
		for _, v := range list {
			seqs = append(seqs, v.Seq)
		}
	}
	out := make([]View, 0, len(seqs))
	for _, seq := range seqs {
		v, err := o.Get(ctx, seq)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Result is one dead letter's outcome of a redrive.
type Result struct {
	Seq     uint64 `json:"seq"`
	Source  string `json:"source,omitempty"`
	ID      string `json:"id,omitempty"`
	Outcome string `json:"outcome"` // redriven, same_event (another dead letter of this event was), still_invalid, would_redrive
	Error   string `json:"error,omitempty"`
}

// Redrive re-validates each dead letter under the current schema (with
// body instead of its own when given: then sel must hold one) and
// republishes it to TOUCHPOINTS with its original (source, id): the
// writer's identity check makes it land once whatever was stored before.
// Then the dead letter is recorded as redriven (a deadletter_resolutions
// row, by actor) and removed from DEADLETTER, in that order, so a crash in
// between leaves it listed and a second redrive is harmless. Still-invalid
// ones stay. counts has selected and one entry per outcome.
func (o Ops) Redrive(ctx context.Context, sel []View, body []byte, dryRun bool, actor string) ([]Result, map[string]int, error) {
	if body != nil && len(sel) != 1 {
		return nil, nil, fmt.Errorf("%w: a fixed body fixes one dead letter; %d are selected", ErrSelection, len(sel))
	}
	counts := map[string]int{"selected": len(sel)}
	results := make([]Result, 0, len(sel))
	done := map[string]bool{}
	for _, v := range sel {
		ev, err := o.event(ctx, v, body)
		r := Result{Seq: v.Seq, Source: ev.Source, ID: ev.ID}
		switch {
		case err != nil:
			r.Outcome, r.Error = "still_invalid", err.Error()
		case dryRun:
			r.Outcome = "would_redrive"
		case done[ev.Source+"\x00"+ev.ID]:
			r.Outcome = "same_event"
		default:
			if err := republish(ctx, o.JS, &ev, v.Seq); err != nil {
				return results, counts, err
			}
			done[ev.Source+"\x00"+ev.ID] = true
			r.Outcome = "redriven"
		}
		if !dryRun && err == nil {
			if err := o.resolve(ctx, v, ev.Source, ev.ID, "redriven", "", actor); err != nil {
				return results, counts, err
			}
		}
		counts[r.Outcome]++
		results = append(results, r)
	}
	return results, counts, nil
}

// Purge removes the dead letters for good, recording each as purged with
// reason (required) and actor.
func (o Ops) Purge(ctx context.Context, sel []View, reason, actor string) (map[string]int, error) {
	if strings.TrimSpace(reason) == "" {
		return nil, fmt.Errorf("%w: a purge must say why (reason)", ErrSelection)
	}
	for _, v := range sel {
		if err := o.resolve(ctx, v, "", "", "purged", reason, actor); err != nil {
			return nil, err
		}
	}
	return map[string]int{"purged": len(sel)}, nil
}

// event rebuilds the event of a dead letter (with body instead of
// its own when given; from TOUCHPOINTS when the dead letter's copy was
// truncated) and validates it as the collector would today.
func (o Ops) event(ctx context.Context, v View, body []byte) (touchpoint.Event, error) {
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
			return touchpoint.Event{}, fmt.Errorf("the dead letter's body was truncated and its original is not in %s; give a fixed body", stream.TouchpointStream)
		}
		s, err := o.JS.Stream(ctx, stream.TouchpointStream)
		if err != nil {
			return touchpoint.Event{}, err
		}
		m, err := s.GetMsg(ctx, v.OriginalSeq)
		if err != nil {
			return touchpoint.Event{}, fmt.Errorf("the body was truncated and the original (seq %d) is gone: %v; give a fixed body", v.OriginalSeq, err)
		}
		h, data = m.Header, m.Data
	}
	ev, err := stream.DecodeMsg(h, data)
	if err != nil {
		return ev, fmt.Errorf("undecodable: %v", err)
	}
	if _, err := touchpoint.Validate(&ev, o.now()); err != nil {
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
		return fmt.Errorf("deadletter: republish %d: %w", deadSeq, err)
	}
	return nil
}

// resolve records what became of a dead letter, then removes it from
// DEADLETTER.
func (o Ops) resolve(ctx context.Context, v View, source, id, resolution, reason, actor string) error {
	if o.DB == nil {
		return fmt.Errorf("deadletter: no ClickHouse to record dead letter %d as %s", v.Seq, resolution)
	}
	if source == "" {
		source, id = v.Source, v.ID
	}
	err := o.DB.InsertRow(ctx, `INSERT INTO deadletter_resolutions (at, consumer, stream_seq, dead_seq, source, id, resolution, reason, actor)`,
		o.now().UTC(), v.Consumer, v.OriginalSeq, v.Seq, source, id, resolution, reason, actor)
	if err != nil {
		return fmt.Errorf("deadletter: record %d as %s: %w", v.Seq, resolution, err)
	}
	s, err := o.JS.Stream(ctx, stream.DeadLetterStream)
	if err != nil {
		return err
	}
	if err := s.DeleteMsg(ctx, v.Seq); err != nil {
		return fmt.Errorf("deadletter: remove %d: %w", v.Seq, err)
	}
	return nil
}

// scan reads every message of a stream matching filters (all when empty),
// from start (zero: the beginning) up to what the stream held when the scan
// began, through an ordered consumer: no state is left on the server, and a
// broker hiccup is resumed by the client library.
func scan(ctx context.Context, js jetstream.JetStream, streamName string, filters []string, start time.Time, fn func(jetstream.Msg) error) error {
	s, err := js.Stream(ctx, streamName)
	if err != nil {
		return fmt.Errorf("deadletter: stream %s: %w", streamName, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("deadletter: stream %s: %w", streamName, err)
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: filters, DeliverPolicy: jetstream.DeliverAllPolicy}
	if !start.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	}
	c, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("deadletter: read %s: %w", streamName, err)
	}
	for {
		batch, err := c.Fetch(500, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return fmt.Errorf("deadletter: read %s: %w", streamName, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return err
			}
			if md.Sequence.Stream > last {
				return nil
			}
			if err := fn(m); err != nil {
				return err
			}
			if md.Sequence.Stream == last || md.NumPending == 0 {
				return nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("deadletter: read %s: %w", streamName, err)
		}
		if n == 0 {
			// Nothing more matches the filter before last.
			return nil
		}
	}
}
