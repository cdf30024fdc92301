package journeyctl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/klantreis/journey/pkg/erasure"
	"github.com/klantreis/journey/pkg/privacy"
)

// ProjectorNames are the projector's stores the erasure covers: the same
// JOURNEY_PROJECTOR_* variables as the projector's, with its defaults.
type ProjectorNames struct {
	Bucket       string `envconfig:"BUCKET" default:"journey_customers"`
	IndexBucket  string `envconfig:"INDEX_BUCKET" default:"journey_expiry"`
	OutboxStream string `envconfig:"OUTBOX_STREAM" default:"PROJECTOR_OUTBOX"`
}

// EraseCmd is `journeyctl erase`: the right to be forgotten for one or
// more customers, as one recorded erasure (docs/privacy.md).
type EraseCmd struct {
	Customers []string `arg:"" optional:"" help:"Customer ids to erase."`
	FromFile  string   `name:"from-file" help:"Read more customer ids from this file, one per line ('-' is stdin)."`
	ID        string   `name:"id" help:"Erasure id (default: a new one). The same id again resumes that erasure or prints its receipt."`
	Resume    bool     `help:"Finish every erasure left unfinished (after a crash), instead of starting one."`
	Sweep     bool     `help:"Purge from TOUCHPOINTS what erased customers' producers published after their erasure, instead of starting one."`
}

// Run erases, then prints the receipt: per store the count removed, and
// the start and completion times. Exit 3 when data was still found after
// the last attempt (run again with the same --id to try again).
func (c *EraseCmd) Run(ctx context.Context, env *Env) error {
	ids, err := c.customers()
	if err != nil {
		return err
	}
	if (c.Resume || c.Sweep) != (len(ids) == 0) || (c.Resume && c.Sweep) {
		return usagef("give customer ids (or --from-file), or --resume or --sweep alone")
	}
	js, db, err := env.both(ctx)
	if err != nil {
		return err
	}
	p := env.Config.Projector
	svc, err := privacy.Open(ctx, js, db, privacy.Options{Replicas: env.Config.Stream.Replicas, AfterStep: progressOf(env.Err),
		Names: privacy.Names{StateBucket: p.Bucket, IndexBucket: p.IndexBucket, OutboxStream: p.OutboxStream}})
	if err != nil {
		return err
	}
	if c.Sweep {
		return c.sweep(ctx, env, svc)
	}
	var receipts []privacy.Receipt
	if c.Resume {
		receipts, err = svc.ResumeAll(ctx)
	} else {
		var r privacy.Receipt
		r, err = svc.Erase(ctx, c.ID, ids)
		if r.ErasureID != "" {
			receipts = append(receipts, r)
		}
	}
	counts := map[string]int{"customers": len(ids), "erasures": len(receipts)}
	sel := map[string]any{"resume": c.Resume}
	var hashes []string
	for _, r := range receipts {
		sel["erasure_id"] = r.ErasureID
		hashes = append(hashes, r.Hashes...)
	}
	sel["customer_hashes"] = hashes // never the ids: the audit trail outlives the erasure
	a := Audit{Action: "erase", Selection: sel, Counts: counts}
	if err != nil {
		a.Outcome, a.Error = "failed", err.Error()
	}
	if aerr := env.audit(ctx, a); aerr != nil && err == nil {
		err = aerr
	}
	if perr := env.emit(receipts, func(w io.Writer) { printReceipts(w, receipts) }); perr != nil && err == nil {
		err = perr
	}
	switch {
	case errors.Is(err, erasure.ErrLeft):
		return fmt.Errorf("%w: %w", ErrVerify, err)
	case errors.Is(err, erasure.ErrInvalid):
		return usagef("%v", err)
	}
	return err
}

func (c *EraseCmd) sweep(ctx context.Context, env *Env, svc *privacy.Service) error {
	n, err := svc.Sweep(ctx)
	a := Audit{Action: "erase.sweep", Selection: map[string]any{}, Counts: map[string]int{"purged": int(n)}}
	if err != nil {
		a.Outcome, a.Error = "failed", err.Error()
	}
	if aerr := env.audit(ctx, a); aerr != nil && err == nil {
		err = aerr
	}
	if perr := env.emit(map[string]uint64{"purged": n}, func(w io.Writer) {
		fmt.Fprintf(w, "purged %d message(s) of erased customers from %s\n", n, "TOUCHPOINTS")
	}); perr != nil && err == nil {
		err = perr
	}
	return err
}

// progressOf prints, on w, each phase and each store as the journal
// records it erased: an erasure waiting on a ClickHouse mutation shows
// where it waits.
func progressOf(w io.Writer) func(*erasure.Record) {
	phase, done := map[string]string{}, map[string]bool{}
	return func(r *erasure.Record) {
		if phase[r.ID] != r.Phase {
			phase[r.ID] = r.Phase
			fmt.Fprintf(w, "erasure %s: %s\n", r.ID, r.Phase)
		}
		for _, st := range r.Steps {
			if k := r.ID + " " + st.Store; st.Erased && !done[k] {
				done[k] = true
				fmt.Fprintf(w, "erasure %s: %s erased (%d)\n", r.ID, st.Store, st.Count)
			}
		}
	}
}

func (c *EraseCmd) customers() ([]string, error) {
	ids := append([]string(nil), c.Customers...)
	if c.FromFile == "" {
		return ids, nil
	}
	var r io.Reader = os.Stdin
	if c.FromFile != "-" {
		f, err := os.Open(c.FromFile)
		if err != nil {
			return nil, usagef("--from-file: %v", err)
		}
		defer f.Close()
		r = f
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			ids = append(ids, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, usagef("--from-file: %v", err)
	}
	return ids, nil
}

func printReceipts(w io.Writer, rs []privacy.Receipt) {
	if len(rs) == 0 {
		fmt.Fprintln(w, "no erasure to resume")
	}
	for _, r := range rs {
		done := "not complete"
		if r.Completed != nil {
			done = r.Completed.Format("2006-01-02T15:04:05.000Z07:00")
		}
		fmt.Fprintf(w, "erasure %s: %s, %d customer(s), started %s, completed %s, attempts %d\n",
			r.ErasureID, r.Phase, len(r.Hashes), r.Started.Format("2006-01-02T15:04:05.000Z07:00"), done, r.Attempts)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "STORE\tREMOVED\tERASED")
		for _, s := range r.Stores {
			fmt.Fprintf(tw, "%s\t%d\t%v\n", s.Store, s.Count, s.Erased)
		}
		_ = tw.Flush()
	}
}
