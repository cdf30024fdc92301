package journeyctl

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
)

// RebuildCmd is `journeyctl rebuild`: rebuild the events table (and its
// identity index event_ids) into shadow tables while live writes go on,
// verify the shadow, swap it in, roll back (docs/operations.md "Rebuild").
type RebuildCmd struct {
	Warehouse RebuildWarehouseCmd `cmd:"" help:"Fill the shadow tables events__rebuild and event_ids__rebuild from TOUCHPOINTS (or --from-table events); resumes where it stopped."`
	Verify    RebuildVerifyCmd    `cmd:"" help:"Compare a table's rows and (source, id, revision) checksums per month with what the source holds; exit 3 when they differ."`
	Swap      RebuildSwapCmd      `cmd:"" help:"Catch the shadow up, swap it in atomically and copy over the live rows written meanwhile; keeps the old tables as *__old."`
	Rollback  RebuildRollbackCmd  `cmd:"" help:"Put the old tables back, with the live rows written since the swap."`
	Status    RebuildStatusCmd    `cmd:"" help:"The rebuild's phase, progress and table sizes."`
}

// rebuildFlags are shared by the commands that read the writer's progress.
type rebuildFlags struct {
	WriterConsumer string        `default:"writer" help:"The live writer's durable consumer (JOURNEY_WRITER_CONSUMER): its ack floor is how far the live table is written."`
	Batch          int           `default:"5000" help:"Messages per shadow insert."`
	Settle         time.Duration `default:"10s" help:"After a swap, how long to wait for inserts begun before it (the writer's insert timeout) before the last catch-up pass."`
}

func (f rebuildFlags) check() error {
	if f.Batch < 1 || f.Batch > 100000 {
		return usagef("--batch must be 1..100000, got %d", f.Batch)
	}
	if f.Settle < 0 {
		return usagef("--settle must not be negative, got %s", f.Settle)
	}
	return nil
}

// rebuildRun is what one rebuild command works with.
type rebuildRun struct {
	env *Env
	js  jetstream.JetStream
	db  *warehouse.DB
	kv  jetstream.KeyValue
}

func openRebuild(ctx context.Context, env *Env) (*rebuildRun, error) {
	js, db, err := env.both(ctx)
	if err != nil {
		return nil, err
	}
	if err := db.CheckShadowable(); err != nil {
		return nil, usagef("%v", err)
	}
	kv, err := env.opsKV(ctx)
	if err != nil {
		return nil, err
	}
	return &rebuildRun{env: env, js: js, db: db, kv: kv}, nil
}

// RebuildWarehouseCmd is `journeyctl rebuild warehouse`.
type RebuildWarehouseCmd struct {
	rebuildFlags
	FromTable string `name:"from-table" placeholder:"events" help:"Fill from this table instead of the stream (when retention no longer holds old events); only 'events' is accepted."`
	Restart   bool   `help:"Drop the shadow and its progress and start over."`
}

// Run fills the shadow, resuming a rebuild that was interrupted.
func (c *RebuildWarehouseCmd) Run(ctx context.Context, env *Env) error {
	if err := c.check(); err != nil {
		return err
	}
	source := "stream"
	if c.FromTable != "" {
		if c.FromTable != "events" {
			return usagef("--from-table: only events can be a rebuild's source, got %q", c.FromTable)
		}
		source = "table"
	}
	r, st, err := openRebuildState(ctx, env)
	if err != nil {
		return err
	}
	switch {
	case st != nil && (st.Phase == phaseSwapping || st.Phase == phaseSwapped || st.Phase == phaseRollingBck):
		return usagef("a rebuild is %s: finish it with `rebuild swap` or `rebuild rollback` first", st.Phase)
	case st != nil && st.Phase == phaseRolledBack && !c.Restart:
		return usagef("the last rebuild was rolled back; start a new one with --restart")
	case st != nil && st.Source != source && !c.Restart:
		return usagef("the rebuild in progress reads from the %s; use --restart to start over from the %s", st.Source, source)
	}
	if st == nil || c.Restart {
		if err := r.db.DropShadow(ctx, shadowSuffix); err != nil {
			return err
		}
		st = &RebuildState{Phase: phaseFilling, Source: source, Started: env.now().UTC()}
	}
	resumed := st.Mark > 0 || len(st.Months) > 0
	if err := r.db.CreateShadow(ctx, shadowSuffix); err != nil {
		return err
	}
	st.Phase = phaseFilling
	if err := saveRebuild(ctx, r.kv, st); err != nil {
		return err
	}
	before := *st
	if err := r.settleEarlier(ctx); err != nil {
		return err
	}
	if source == "table" {
		err = r.fillFromTable(ctx, st)
	} else {
		err = r.catchUp(ctx, st, c.rebuildFlags, false)
	}
	if err == nil {
		st.Phase = phaseFilled
		err = saveRebuild(ctx, r.kv, st)
	}
	counts := map[string]int{"inserted": int(st.Inserted - before.Inserted), "skipped": int(st.Skipped - before.Skipped),
		"invalid": int(st.Invalid - before.Invalid), "mark": int(st.Mark)}
	r.auditRebuild(ctx, "rebuild.warehouse", map[string]any{"source": source, "resumed": resumed, "restart": c.Restart}, counts, err)
	if err != nil {
		return err
	}
	return env.emit(st, func(w io.Writer) {
		fmt.Fprintf(w, "shadow %s filled from the %s: mark %d, %d rows inserted now (%d in all), %d duplicates or stale skipped, %d invalid\n",
			"events"+shadowSuffix, source, st.Mark, counts["inserted"], st.Inserted, st.Skipped, st.Invalid)
	})
}

// catchUp fills the shadow from the stream up to the live writer's ack
// floor, again while the floor moved on by more than a batch (or, with
// once, a single pass).
func (r *rebuildRun) catchUp(ctx context.Context, st *RebuildState, f rebuildFlags, once bool) error {
	for {
		target, err := writerFloor(ctx, r.js, f.WriterConsumer)
		if err != nil {
			return err
		}
		if target <= st.Mark {
			return nil
		}
		prog := NewProgress(r.env.Err, r.env.TTY, r.env.ProgressEvery, "rebuild events", "events", int64(target-st.Mark))
		err = readRange(ctx, r.js, st.Mark+1, target, f.Batch, func(msgs []jetstream.Msg) error {
			err := r.fillBatch(ctx, st, msgs)
			prog.Add(len(msgs))
			return err
		})
		prog.Finish()
		if err != nil {
			return err
		}
		st.Mark = target // sequences the retention removed count as read
		if err := saveRebuild(ctx, r.kv, st); err != nil {
			return err
		}
		if once {
			return nil
		}
		next, err := writerFloor(ctx, r.js, f.WriterConsumer)
		if err != nil {
			return err
		}
		if next <= target+uint64(f.Batch) {
			return nil
		}
	}
}

// fillBatch judges a batch of messages against the shadow's identity
// index and inserts the new rows, then records the batch's last sequence.
// A kill between the insert and the record re-reads the batch, and the
// judgement finds its rows: nothing is inserted twice.
func (r *rebuildRun) fillBatch(ctx context.Context, st *RebuildState, msgs []jetstream.Msg) error {
	var rows []warehouse.EventRow
	var last uint64
	for _, m := range msgs {
		d, seq, err := decodeRow(r.db, m)
		if err != nil {
			return err
		}
		last = seq
		if d.invalid {
			st.Invalid++
			continue
		}
		rows = append(rows, d.row)
	}
	hashes := make([]uint64, 0, len(rows))
	for _, row := range rows {
		hashes = append(hashes, row.IDHash)
	}
	stored := map[warehouse.Identity]touchpoint.Version{}
	if len(hashes) > 0 {
		var err error
		if stored, err = r.db.StoredVersionsIn(ctx, "event_ids"+shadowSuffix, hashes); err != nil {
			return err
		}
	}
	keep, skipped, conflicts := judgeRows(rows, stored)
	if err := r.db.InsertEventsInto(r.writing(ctx), "events"+shadowSuffix, keep); err != nil {
		return err
	}
	st.Inserted += uint64(len(keep))
	st.Skipped += skipped
	st.Invalid += conflicts
	if last > st.Mark {
		st.Mark = last
	}
	return saveRebuild(ctx, r.kv, st)
}

// fillFromTable copies events into the shadow month by month, one row
// per (source, id, revision), server-side. A month is recorded once
// copied; a month copied halfway is copied again without doubling
// (the copy skips what the shadow's index holds).
func (r *rebuildRun) fillFromTable(ctx context.Context, st *RebuildState) error {
	months, err := r.db.Months(ctx, "events")
	if err != nil {
		return err
	}
	if st.Mark == 0 {
		// verify compares both tables up to here: the rows the copy
		// certainly saw, whatever the live writer adds meanwhile.
		if st.Mark, err = r.db.MaxStreamSeq(ctx, "events"); err != nil {
			return err
		}
	}
	prog := NewProgress(r.env.Err, r.env.TTY, r.env.ProgressEvery, "rebuild events from table", "months", int64(len(months)))
	defer prog.Finish()
	for _, m := range months {
		if slices.Contains(st.Months, m) {
			prog.Add(1)
			continue
		}
		n, err := r.db.CopyMonth(ctx, "events", "events"+shadowSuffix, "event_ids"+shadowSuffix, m)
		if err != nil {
			return err
		}
		st.Inserted += n
		st.Months = append(st.Months, m)
		if err := saveRebuild(ctx, r.kv, st); err != nil {
			return err
		}
		prog.Add(1)
	}
	return nil
}

// auditRebuild records the action; an audit failure is reported on
// stderr but does not hide the action's own error.
func (r *rebuildRun) auditRebuild(ctx context.Context, action string, sel map[string]any, counts map[string]int, err error) {
	a := Audit{Action: action, Selection: sel, Counts: counts}
	if err != nil {
		a.Outcome, a.Error = "failed", err.Error()
	}
	if aerr := r.env.audit(context.WithoutCancel(ctx), a); aerr != nil {
		fmt.Fprintln(r.env.Err, "journeyctl:", aerr)
	}
}

// RebuildStatusCmd is `journeyctl rebuild status`.
type RebuildStatusCmd struct{}

// RebuildStatus is the rebuild's state and the sizes of its tables.
type RebuildStatus struct {
	State  *RebuildState     `json:"state"`
	Tables map[string]uint64 `json:"tables"` // rows of each table that exists
}

// Run prints the rebuild's state.
func (c *RebuildStatusCmd) Run(ctx context.Context, env *Env) error {
	r, st, err := openRebuildState(ctx, env)
	if err != nil {
		return err
	}
	out := RebuildStatus{State: st, Tables: map[string]uint64{}}
	for _, t := range []string{"events", "events" + shadowSuffix, "events" + oldSuffix} {
		ok, err := r.db.TableExists(ctx, t)
		if err != nil {
			return err
		}
		if ok {
			if out.Tables[t], err = r.db.CountRows(ctx, t); err != nil {
				return err
			}
		}
	}
	return env.emit(out, func(w io.Writer) {
		if st == nil {
			fmt.Fprintln(w, "no rebuild has run")
		} else {
			fmt.Fprintf(w, "phase %s, source %s, mark %d, inserted %d, skipped %d, invalid %d, caught up %d, started %s, updated %s\n",
				st.Phase, st.Source, st.Mark, st.Inserted, st.Skipped, st.Invalid, st.CaughtUp, st.Started.Format(time.RFC3339), st.Updated.Format(time.RFC3339))
			if !st.SwappedAt.IsZero() {
				fmt.Fprintf(w, "swapped at %s by %s, swap mark %d\n", st.SwappedAt.Format(time.RFC3339), st.Method, st.SwapMark)
			}
		}
		for _, t := range []string{"events", "events" + shadowSuffix, "events" + oldSuffix} {
			if n, ok := out.Tables[t]; ok {
				fmt.Fprintf(w, "%-18s %d rows\n", t, n)
			}
		}
	})
}

// sortedSums turns a month map into a sorted slice.
func sortedSums(m map[uint32]*warehouse.PartitionSum) []warehouse.PartitionSum {
	out := make([]warehouse.PartitionSum, 0, len(m))
	for _, p := range m {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b warehouse.PartitionSum) int { return int(a.Month) - int(b.Month) })
	return out
}
