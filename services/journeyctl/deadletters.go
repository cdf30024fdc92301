package journeyctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/stream"
)

// DeadlettersCmd groups the dead-letter commands. A dead letter is named
// by its sequence in the DEADLETTER stream (the SEQ column of list).
type DeadlettersCmd struct {
	List    DeadlettersListCmd    `cmd:"" help:"List dead letters with their reason."`
	Show    DeadlettersShowCmd    `cmd:"" help:"Print one dead letter's headers and body."`
	Redrive DeadlettersRedriveCmd `cmd:"" help:"Re-validate dead letters and republish them to TOUCHPOINTS."`
	Purge   DeadlettersPurgeCmd   `cmd:"" help:"Remove dead letters for good (requires --reason)."`
}

// DeadFilter selects dead letters.
type DeadFilter struct {
	Consumer string    `help:"Only this consumer's dead letters (e.g. writer)."`
	Class    string    `help:"Only this class (invalid, undecodable, conflict, rejected, ...)."`
	Since    time.Time `help:"Only dead letters stored at or after this RFC 3339 time." format:"2006-01-02T15:04:05Z07:00"`
	Until    time.Time `help:"Only dead letters stored before this RFC 3339 time." format:"2006-01-02T15:04:05Z07:00"`
}

func (f DeadFilter) selection() map[string]any {
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

func (f DeadFilter) empty() bool {
	return f.Consumer == "" && f.Class == "" && f.Since.IsZero() && f.Until.IsZero()
}

// DeadLetterView is a dead letter as the commands print it.
type DeadLetterView struct {
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

func viewOf(seq uint64, at time.Time, subject string, h nats.Header, data []byte, full bool) DeadLetterView {
	v := DeadLetterView{Seq: seq, StoredAt: at.UTC(), Consumer: h.Get(stream.HeaderDeadConsumer), Class: h.Get(stream.HeaderDeadClass),
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

func (f DeadFilter) match(v DeadLetterView) bool {
	return (f.Class == "" || v.Class == f.Class) && (f.Until.IsZero() || v.StoredAt.Before(f.Until)) &&
		(f.Since.IsZero() || !v.StoredAt.Before(f.Since))
}

// listDead returns the dead letters f selects, oldest first.
func listDead(ctx context.Context, js jetstream.JetStream, f DeadFilter) ([]DeadLetterView, error) {
	var filters []string
	if f.Consumer != "" {
		filters = []string{stream.DeadLetterSubject(f.Consumer)}
	}
	var out []DeadLetterView
	err := scan(ctx, js, stream.DeadLetterStream, filters, f.Since, func(m jetstream.Msg) error {
		md, _ := m.Metadata()
		v := viewOf(md.Sequence.Stream, md.Timestamp, m.Subject(), m.Headers(), nil, false)
		if f.match(v) {
			out = append(out, v)
		}
		return nil
	})
	return out, err
}

// getDead fetches one dead letter by its DEADLETTER sequence.
func getDead(ctx context.Context, js jetstream.JetStream, seq uint64) (DeadLetterView, error) {
	s, err := js.Stream(ctx, stream.DeadLetterStream)
	if err != nil {
		return DeadLetterView{}, err
	}
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return DeadLetterView{}, fmt.Errorf("%w: no dead letter at sequence %d (redriven, purged or expired?)", ErrNotFound, seq)
	}
	if err != nil {
		return DeadLetterView{}, fmt.Errorf("journeyctl: dead letter %d: %w", seq, err)
	}
	return viewOf(m.Sequence, m.Time, m.Subject, m.Header, m.Data, true), nil
}

// DeadlettersListCmd is `deadletters list`.
type DeadlettersListCmd struct {
	DeadFilter
}

// Run lists the selected dead letters.
func (c *DeadlettersListCmd) Run(ctx context.Context, env *Env) error {
	js, err := env.JS(ctx)
	if err != nil {
		return err
	}
	list, err := listDead(ctx, js, c.DeadFilter)
	if err != nil {
		return err
	}
	if list == nil {
		list = []DeadLetterView{}
	}
	return env.emit(map[string]any{"dead_letters": list, "count": len(list)}, func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tSTORED\tCONSUMER\tCLASS\tSOURCE\tID\tREASON")
		for _, v := range list {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Seq, v.StoredAt.Format(time.RFC3339), v.Consumer, v.Class, v.Source, v.ID, oneLine(v.Reason, 100))
		}
		tw.Flush()
		fmt.Fprintf(w, "%d dead letters\n", len(list))
	})
}

func oneLine(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// DeadlettersShowCmd is `deadletters show SEQ`.
type DeadlettersShowCmd struct {
	Seq uint64 `arg:"" help:"The dead letter's DEADLETTER sequence (from list)."`
}

// Run prints the headers and body; it is audited, as a body may hold
// personal data.
func (c *DeadlettersShowCmd) Run(ctx context.Context, env *Env) error {
	js, err := env.JS(ctx)
	if err != nil {
		return err
	}
	v, err := getDead(ctx, js, c.Seq)
	if err != nil {
		return err
	}
	if err := env.audit(ctx, Audit{Action: "deadletters.show", Selection: map[string]any{"seq": c.Seq}, Counts: map[string]int{"shown": 1}}); err != nil {
		return err
	}
	return env.emit(v, func(w io.Writer) {
		fmt.Fprintf(w, "dead letter %d, stored %s by %s: %s\n", v.Seq, v.StoredAt.Format(time.RFC3339), v.Consumer, v.Class)
		fmt.Fprintf(w, "reason: %s\n", v.Reason)
		keys := make([]string, 0, len(v.Headers))
		for k := range v.Headers {
			keys = append(keys, k)
		}
		sortStrings(keys)
		for _, k := range keys {
			for _, val := range v.Headers[k] {
				fmt.Fprintf(w, "%s: %s\n", k, val)
			}
		}
		fmt.Fprintf(w, "\n%s\n", v.Body)
	})
}
