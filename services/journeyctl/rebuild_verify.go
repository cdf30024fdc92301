package journeyctl

import (
	"context"
	"fmt"
	"io"

	"github.com/klantreis/journey/pkg/warehouse"
)

// RebuildVerifyCmd is `journeyctl rebuild verify`.
type RebuildVerifyCmd struct {
	Table string `help:"The table to verify (default: events__rebuild before the swap, events after it)."`
	Upto  uint64 `help:"Compare the rows of stream sequences up to this one (default: the shadow's mark for the shadow, the live writer's ack floor for events)."`
	// Against defaults to the rebuild's source.
	Against        string `enum:"auto,stream,table" default:"auto" help:"What the table must equal: the stream (judged like the writer), or the events table (one row per identity) for a rebuild --from-table."`
	WriterConsumer string `default:"writer" help:"The live writer's durable consumer, for the default --upto of events."`
}

// MonthCheck is one month partition's comparison.
type MonthCheck struct {
	Month uint32                 `json:"month"`
	Want  warehouse.PartitionSum `json:"want"`
	Got   warehouse.PartitionSum `json:"got"`
	OK    bool                   `json:"ok"`
}

// Verification is what verify found.
type Verification struct {
	Table   string       `json:"table"`
	Against string       `json:"against"`
	Upto    uint64       `json:"upto"`
	Months  []MonthCheck `json:"months"`
	Want    uint64       `json:"want_rows"`
	Got     uint64       `json:"got_rows"`
	OK      bool         `json:"ok"`
}

// Run compares and prints both sides; a difference exits with ExitVerify.
func (c *RebuildVerifyCmd) Run(ctx context.Context, env *Env) error {
	r, st, err := openRebuildState(ctx, env)
	if err != nil {
		return err
	}
	v := Verification{Table: c.Table, Against: c.Against, Upto: c.Upto}
	swapped := st != nil && (st.Phase == phaseSwapped || st.Phase == phaseSwapping)
	if v.Table == "" {
		v.Table = "events" + shadowSuffix
		if st == nil || swapped || st.Phase == phaseRolledBack {
			v.Table = "events"
		}
	}
	if ok, err := r.db.TableExists(ctx, v.Table); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("%w: table %s", ErrNotFound, v.Table)
	}
	if v.Against == "auto" {
		v.Against = "stream"
		if st != nil && st.Source == "table" {
			v.Against = "table"
		}
	}
	if v.Upto == 0 {
		if v.Table == "events"+shadowSuffix && st != nil {
			v.Upto = st.Mark
		} else if v.Upto, err = writerFloor(ctx, r.js, c.WriterConsumer); err != nil {
			return err
		}
	}
	var want []warehouse.PartitionSum
	switch {
	case v.Against == "stream":
		prog := NewProgress(env.Err, env.TTY, env.ProgressEvery, "verify: read the stream", "events", int64(v.Upto))
		want, err = streamSums(ctx, r.js, r.db, v.Upto, prog)
		prog.Finish()
	case v.Table == "events":
		// After a swap of a table copy the source is the kept old table.
		want, err = r.db.DistinctPartitionSums(ctx, "events"+oldSuffix, v.Upto)
	default:
		want, err = r.db.DistinctPartitionSums(ctx, "events", v.Upto)
	}
	if err != nil {
		return err
	}
	got, err := r.db.PartitionSums(ctx, v.Table, v.Upto)
	if err != nil {
		return err
	}
	v.compare(want, got)
	r.auditRebuild(ctx, "rebuild.verify", map[string]any{"table": v.Table, "against": v.Against, "upto": v.Upto},
		map[string]int{"want_rows": int(v.Want), "got_rows": int(v.Got), "months": len(v.Months), "ok": boolInt(v.OK)}, nil)
	if err := env.emit(v, v.print); err != nil {
		return err
	}
	if !v.OK {
		return fmt.Errorf("%w: %s differs from the %s up to stream sequence %d", ErrVerify, v.Table, v.Against, v.Upto)
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// compare pairs the months of both sides; a month on one side only, a
// count, a checksum or a duplicate (rows != distinct) is a difference.
func (v *Verification) compare(want, got []warehouse.PartitionSum) {
	byMonth := map[uint32]*MonthCheck{}
	var order []uint32
	at := func(m uint32) *MonthCheck {
		if c := byMonth[m]; c != nil {
			return c
		}
		byMonth[m] = &MonthCheck{Month: m}
		order = append(order, m)
		return byMonth[m]
	}
	for _, p := range want {
		at(p.Month).Want = p
		v.Want += p.Rows
	}
	for _, p := range got {
		at(p.Month).Got = p
		v.Got += p.Rows
	}
	v.OK = true
	sums := map[uint32]*warehouse.PartitionSum{}
	for _, m := range order {
		c := byMonth[m]
		c.Want.Month, c.Got.Month = m, m
		c.OK = c.Want == c.Got
		v.OK = v.OK && c.OK
		sums[m] = &c.Want
	}
	for _, s := range sortedSums(sums) {
		v.Months = append(v.Months, *byMonth[s.Month])
	}
}

func (v *Verification) print(w io.Writer) {
	fmt.Fprintf(w, "%s against the %s, stream sequences <= %d\n", v.Table, v.Against, v.Upto)
	fmt.Fprintf(w, "%-7s %10s %10s %20s %20s   %10s %10s %20s %20s\n", "month", "want rows", "distinct", "sum", "xor", "got rows", "distinct", "sum", "xor")
	for _, c := range v.Months {
		mark := "ok"
		if !c.OK {
			mark = "DIFFERS"
		}
		fmt.Fprintf(w, "%-7d %10d %10d %20d %20d   %10d %10d %20d %20d  %s\n", c.Month,
			c.Want.Rows, c.Want.Distinct, c.Want.Sum, c.Want.Xor, c.Got.Rows, c.Got.Distinct, c.Got.Sum, c.Got.Xor, mark)
	}
	verdict := "equal"
	if !v.OK {
		verdict = "DIFFERENT"
	}
	fmt.Fprintf(w, "total: want %d rows, got %d: %s\n", v.Want, v.Got, verdict)
}
