package journeyctl

import (
	"context"
	"fmt"
	"io"
	"time"
)

// RebuildSwapCmd is `journeyctl rebuild swap`.
type RebuildSwapCmd struct {
	rebuildFlags
}

// Run catches the shadow up with the live writer, swaps it in and copies
// the rows the live writer stored in the old table after the shadow's
// mark. Run again after an interruption, it completes the swap.
//
// Why nothing is lost or doubled: the shadow holds the stream up to the
// mark M, which is at most the live writer's ack floor, so every row the
// writer stored for a message after M is in the old table, or (if its
// insert ran after the RENAME) in the new one, and never in the shadow.
// The catch-up copies the old table's rows after M whose identity the new
// table lacks; the writer's identity check reads the new index from the
// swap on.
func (c *RebuildSwapCmd) Run(ctx context.Context, env *Env) error {
	if err := c.check(); err != nil {
		return err
	}
	r, st, err := openRebuildState(ctx, env)
	if err != nil {
		return err
	}
	if st == nil || (st.Phase != phaseFilled && st.Phase != phaseSwapping) {
		return usagef("nothing to swap: the rebuild is %s (run `rebuild warehouse` until it reports the shadow filled)", phaseOf(st))
	}
	before := st.CaughtUp
	err = r.swap(ctx, st, c.rebuildFlags)
	counts := map[string]int{"mark": int(st.SwapMark), "caught_up": int(st.CaughtUp - before), "inserted": int(st.Inserted)}
	r.auditRebuild(ctx, "rebuild.swap", map[string]any{"source": st.Source, "method": st.Method}, counts, err)
	if err != nil {
		return err
	}
	return env.emit(st, func(w io.Writer) {
		fmt.Fprintf(w, "swapped by %s at mark %d: events is the rebuilt table, the old one is events%s; %d live rows caught up from it\n",
			st.Method, st.SwapMark, oldSuffix, counts["caught_up"])
	})
}

func (r *rebuildRun) swap(ctx context.Context, st *RebuildState, f rebuildFlags) error {
	if err := r.settleEarlier(ctx); err != nil {
		return err
	}
	if st.Phase == phaseFilled {
		if old, err := r.db.TableExists(ctx, "events"+oldSuffix); err != nil {
			return err
		} else if old {
			return usagef("events%s exists already: roll back or drop it before a new swap", oldSuffix)
		}
		if st.Source == "stream" {
			if err := r.catchUp(ctx, st, f, false); err != nil {
				return err
			}
		}
	}
	fence, err := takeWriterFence(ctx, r.js, 30*time.Second)
	if err != nil {
		return err
	}
	defer fence.release()
	if st.Phase == phaseFilled && st.Source == "stream" {
		// The writers are still now: the last stretch is a short one.
		if err := r.catchUp(ctx, st, f, true); err != nil {
			return err
		}
	}
	if st.Phase == phaseFilled {
		st.Phase, st.SwapMark = phaseSwapping, st.Mark
		if err := saveRebuild(ctx, r.kv, st); err != nil {
			return err
		}
	}
	// Swap skips the pairs an interrupted run swapped already.
	if st.Method, err = r.db.Swap(ctx, shadowSuffix, oldSuffix, st.SwapMark); err != nil {
		return err
	}
	if st.SwappedAt.IsZero() {
		st.SwappedAt = r.env.now().UTC()
	}
	if err := saveRebuild(ctx, r.kv, st); err != nil {
		return err
	}
	if err := r.finalPass(ctx, st, "events"+oldSuffix, f.Settle, fence); err != nil {
		return err
	}
	st.Phase = phaseSwapped
	return saveRebuild(ctx, r.kv, st)
}

// finalPass copies from the replaced table into events the rows after
// the swap mark that events lacks, twice: right away, and after settle,
// for an insert that had begun before the swap and landed in the old
// table after the first pass (a server that renames without waiting for
// running inserts). Each pass skips what events holds.
//
// The first pass runs while journeyctl holds the writers' fence (when they
// use one), which is released before the wait.
func (r *rebuildRun) finalPass(ctx context.Context, st *RebuildState, from string, settle time.Duration, fence *writerFence) error {
	after := st.SwapMark
	if st.Source == "table" {
		after = 0 // a table copy has no stream order to trust: compare every row
	}
	for i := range 2 {
		if i == 1 {
			fence.release()
			select {
			case <-time.After(settle):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		n, err := r.db.CopyMissing(ctx, from, "events", "event_ids", after)
		if err != nil {
			return err
		}
		st.CaughtUp += n
		if err := saveRebuild(ctx, r.kv, st); err != nil {
			return err
		}
	}
	return nil
}

// RebuildRollbackCmd is `journeyctl rebuild rollback`.
type RebuildRollbackCmd struct {
	Settle time.Duration `default:"10s" help:"How long to wait for inserts begun before the swap back before the last catch-up pass."`
}

// Run swaps the old tables back in, keeps the rebuilt ones as
// *__rebuild, and copies the rows the live writer stored in the rebuilt
// table since the swap into the restored one.
func (c *RebuildRollbackCmd) Run(ctx context.Context, env *Env) error {
	r, st, err := openRebuildState(ctx, env)
	if err != nil {
		return err
	}
	if st == nil || (st.Phase != phaseSwapped && st.Phase != phaseRollingBck) {
		return usagef("nothing to roll back: the rebuild is %s (only a swapped rebuild can be rolled back)", phaseOf(st))
	}
	before := st.CaughtUp
	err = r.rollback(ctx, st, c.Settle)
	counts := map[string]int{"mark": int(st.SwapMark), "caught_up": int(st.CaughtUp - before)}
	r.auditRebuild(ctx, "rebuild.rollback", map[string]any{"source": st.Source}, counts, err)
	if err != nil {
		return err
	}
	return env.emit(st, func(w io.Writer) {
		fmt.Fprintf(w, "rolled back: events is the old table again, the rebuilt one is events%s; %d live rows written since the swap copied back\n",
			shadowSuffix, counts["caught_up"])
	})
}

func (r *rebuildRun) rollback(ctx context.Context, st *RebuildState, settle time.Duration) error {
	if err := r.settleEarlier(ctx); err != nil {
		return err
	}
	oldLeft, err := r.db.TableExists(ctx, "events"+oldSuffix)
	if err != nil {
		return err
	}
	if st.Phase == phaseSwapped && !oldLeft {
		return fmt.Errorf("%w: events%s is gone: there is nothing to roll back to", ErrNotFound, oldSuffix)
	}
	st.Phase = phaseRollingBck
	if err := saveRebuild(ctx, r.kv, st); err != nil {
		return err
	}
	fence, err := takeWriterFence(ctx, r.js, 30*time.Second)
	if err != nil {
		return err
	}
	defer fence.release()
	if _, err := r.db.Swap(ctx, oldSuffix, shadowSuffix, st.SwapMark); err != nil {
		return err
	}
	if err := r.finalPass(ctx, st, "events"+shadowSuffix, settle, fence); err != nil {
		return err
	}
	st.Phase = phaseRolledBack
	return saveRebuild(ctx, r.kv, st)
}
