package warehouse

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/klantreis/journey/pkg/touchpoint"
)

// Retention is how long journey keeps personal data in ClickHouse, per
// touchpoint kind (docs/privacy.md). A kind without an entry, or with 0,
// is kept until erasure. Survey retention covers satisfaction_responses
// too; DeadLetters bounds events_dead.
type Retention struct {
	Kinds       map[touchpoint.Kind]time.Duration
	DeadLetters time.Duration
}

// Active reports whether anything expires.
func (r Retention) Active() bool {
	if r.DeadLetters > 0 {
		return true
	}
	for _, d := range r.Kinds {
		if d > 0 {
			return true
		}
	}
	return false
}

// Longest is the longest retention over every fact kind, and false when
// some kind is kept for ever (then no month of events can be dropped
// whole).
func (r Retention) Longest() (time.Duration, bool) {
	var longest time.Duration
	for _, k := range touchpoint.FactKinds() {
		d := r.Kinds[k]
		if d <= 0 {
			return 0, false
		}
		longest = max(longest, d)
	}
	return longest, true
}

// RetentionReport is what one pass did.
type RetentionReport struct {
	// DroppedPartitions are "table:partition" of months dropped whole.
	DroppedPartitions []string
	// Deleted counts the rows a delete mutation removed, by "table:kind".
	Deleted map[string]uint64
	// TTL is the table TTL set on a server that has TTL with WHERE ("" when
	// unchanged or not used).
	TTL string
}

// ApplyRetention enforces r once at now; the writer runs it on a schedule.
// On a server with TTL … WHERE (21.1+) it sets table TTLs once and the
// server expires rows itself. On older servers (18.16) it drops every
// monthly partition that lies wholly before now minus the longest
// retention (cheap: no rewrite), then removes what a shorter retention
// expires with one ALTER … DELETE per kind and table (a mutation, only
// when there are rows to remove). It is idempotent; a pass interrupted
// halfway is finished by the next.
func (db *DB) ApplyRetention(ctx context.Context, r Retention, now time.Time) (RetentionReport, error) {
	rep := RetentionReport{Deleted: map[string]uint64{}}
	if !r.Active() {
		return rep, nil
	}
	if db.Features.TTLWhere {
		return rep, db.applyTTL(ctx, r, &rep)
	}
	if err := db.dropExpiredPartitions(ctx, r, now, &rep); err != nil {
		return rep, err
	}
	kinds := touchpoint.FactKinds()
	for _, k := range kinds {
		d := r.Kinds[k]
		if d <= 0 {
			continue
		}
		cut := now.Add(-d).UTC()
		if err := db.deleteBefore(ctx, "events", "kind = '"+string(k)+"' AND time < ?", cut, "events:"+string(k), &rep); err != nil {
			return rep, err
		}
		if k == touchpoint.KindSurvey {
			if err := db.deleteBefore(ctx, "satisfaction_responses", "time < ?", cut, "satisfaction_responses:survey", &rep); err != nil {
				return rep, err
			}
		}
	}
	if r.DeadLetters > 0 {
		if err := db.deleteBefore(ctx, "events_dead", "dead_at < ?", now.Add(-r.DeadLetters).UTC(), "events_dead:", &rep); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// deleteBefore removes the rows of table matching where (one time
// argument) with a mutation, when there are any, and waits for it.
func (db *DB) deleteBefore(ctx context.Context, table, where string, cut time.Time, key string, rep *RetentionReport) error {
	var n uint64
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM "+table+" WHERE "+where, cut).Scan(&n); err != nil {
		return fmt.Errorf("warehouse: retention: count %s: %w", table, err)
	}
	if n == 0 {
		return nil
	}
	if err := db.Conn.Exec(ctx, "ALTER TABLE "+db.local(table)+" DELETE WHERE "+where, cut); err != nil {
		return fmt.Errorf("warehouse: retention: delete from %s: %w", table, err)
	}
	if err := db.waitMutations(ctx, db.local(table)); err != nil {
		return err
	}
	rep.Deleted[key] += n
	return nil
}

// waitMutations waits until table has no unfinished mutation.
func (db *DB) waitMutations(ctx context.Context, table string) error {
	for {
		var n uint64
		if err := db.Conn.QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = currentDatabase() AND table = ? AND is_done = 0", table).Scan(&n); err != nil {
			return fmt.Errorf("warehouse: retention: wait for mutations on %s: %w", table, err)
		}
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("warehouse: retention: wait for mutations on %s: %w", table, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ExpiredMonths returns the monthly partitions (YYYYMM) among parts that
// end at or before cut: every row in them is older than cut.
func ExpiredMonths(parts []string, cut time.Time) []string {
	var out []string
	for _, p := range parts {
		if len(p) != 6 {
			continue
		}
		y, err1 := strconv.Atoi(p[:4])
		m, err2 := strconv.Atoi(p[4:])
		if err1 != nil || err2 != nil || m < 1 || m > 12 {
			continue
		}
		end := time.Date(y, time.Month(m)+1, 1, 0, 0, 0, 0, time.UTC)
		if !end.After(cut) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

func (db *DB) dropExpiredPartitions(ctx context.Context, r Retention, now time.Time, rep *RetentionReport) error {
	drops := map[string]time.Duration{}
	if longest, ok := r.Longest(); ok {
		drops["events"] = longest
	}
	if d := r.Kinds[touchpoint.KindSurvey]; d > 0 {
		drops["satisfaction_responses"] = d
	}
	if r.DeadLetters > 0 {
		drops["events_dead"] = r.DeadLetters
	}
	for table, d := range drops {
		rows, err := db.Conn.Query(ctx, "SELECT DISTINCT partition FROM system.parts WHERE database = currentDatabase() AND table = ? AND active", db.local(table))
		if err != nil {
			return fmt.Errorf("warehouse: retention: partitions of %s: %w", table, err)
		}
		var parts []string
		for rows.Next() {
			var p string
			if err := rows.Scan(&p); err != nil {
				rows.Close()
				return fmt.Errorf("warehouse: retention: partitions of %s: %w", table, err)
			}
			parts = append(parts, p)
		}
		rows.Close()
		for _, p := range ExpiredMonths(parts, now.Add(-d)) {
			if err := db.Conn.Exec(ctx, "ALTER TABLE "+db.local(table)+" DROP PARTITION "+p); err != nil {
				return fmt.Errorf("warehouse: retention: drop %s partition %s: %w", table, p, err)
			}
			rep.DroppedPartitions = append(rep.DroppedPartitions, table+":"+p)
		}
	}
	return nil
}

// TTLClauses renders the table TTLs of r for servers with TTL … WHERE: by
// table, the expression list of its TTL clause (no entry: no TTL).
func TTLClauses(r Retention) map[string]string {
	out := map[string]string{}
	var ev []string
	for _, k := range touchpoint.FactKinds() {
		if d := r.Kinds[k]; d > 0 {
			ev = append(ev, fmt.Sprintf("toDateTime(time) + INTERVAL %d SECOND DELETE WHERE kind = '%s'", int64(d/time.Second), k))
		}
	}
	if len(ev) > 0 {
		out["events"] = strings.Join(ev, ", ")
	}
	if d := r.Kinds[touchpoint.KindSurvey]; d > 0 {
		out["satisfaction_responses"] = fmt.Sprintf("toDateTime(time) + INTERVAL %d SECOND", int64(d/time.Second))
	}
	if r.DeadLetters > 0 {
		out["events_dead"] = fmt.Sprintf("dead_at + INTERVAL %d SECOND", int64(r.DeadLetters/time.Second))
	}
	return out
}

// applyTTL sets each table's TTL when its definition does not hold it
// yet (MODIFY TTL makes the server rewrite the table's parts, so it runs
// only on a change).
func (db *DB) applyTTL(ctx context.Context, r Retention, rep *RetentionReport) error {
	clauses := TTLClauses(r)
	tables := make([]string, 0, len(clauses))
	for t := range clauses {
		tables = append(tables, t)
	}
	sort.Strings(tables)
	for _, table := range tables {
		var create string
		if err := db.Conn.QueryRow(ctx, "SELECT create_table_query FROM system.tables WHERE database = currentDatabase() AND name = ?", db.local(table)).Scan(&create); err != nil {
			return fmt.Errorf("warehouse: retention: definition of %s: %w", table, err)
		}
		if strings.Contains(normalSQL(create), normalSQL("TTL "+clauses[table])) {
			continue
		}
		if err := db.Conn.Exec(ctx, "ALTER TABLE "+db.local(table)+" MODIFY TTL "+clauses[table]); err != nil {
			return fmt.Errorf("warehouse: retention: TTL of %s: %w", table, err)
		}
		rep.TTL += table + ": TTL " + clauses[table] + "\n"
	}
	return nil
}

// normalSQL lowercases and drops whitespace, for a loose comparison with
// the server's rendering of a definition.
func normalSQL(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\n' || r == '\t' {
			return -1
		}
		return r
	}, strings.ToLower(s))
}
