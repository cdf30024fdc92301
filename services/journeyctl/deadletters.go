package journeyctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/deadletter"
	"github.com/klantreis/journey/pkg/warehouse"
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

func (f DeadFilter) filter() deadletter.Filter {
	return deadletter.Filter{Consumer: f.Consumer, Class: f.Class, Since: f.Since, Until: f.Until}
}

// DeadLetterView is a dead letter as the commands print it.
type DeadLetterView = deadletter.View

// deadOps is the dead-letter operations over the command's connections;
// db may be nil for reads and dry runs.
func (e *Env) deadOps(js jetstream.JetStream, db *warehouse.DB) deadletter.Ops {
	return deadletter.Ops{JS: js, DB: db, Now: e.now}
}

// deadErr maps the package's errors to the command's exit codes.
func deadErr(err error) error {
	switch {
	case errors.Is(err, deadletter.ErrNotFound):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.Is(err, deadletter.ErrSelection):
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	return err
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
	list, err := env.deadOps(js, nil).List(ctx, c.filter())
	if err != nil {
		return deadErr(err)
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
	v, err := env.deadOps(js, nil).Get(ctx, c.Seq)
	if err != nil {
		return deadErr(err)
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
