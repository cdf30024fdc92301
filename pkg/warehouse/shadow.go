package warehouse

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/klantreis/journey/pkg/touchpoint"
)

// Shadow tables: a rebuild fills copies of events and event_ids (same DDL,
// a suffixed name) beside the live ones and swaps them in at the end
// (journeyctl rebuild, docs/operations.md "Rebuild").

// ShadowTables are the tables a warehouse rebuild shadows, in swap order.
// event_ids is swapped with events: the writer's identity check must read
// the index of the table it inserts into.
var ShadowTables = []string{"events", "event_ids"}

// ErrShadow marks a shadow operation refused for the state it found (a
// cluster layout, a missing table, a target that exists already).
var ErrShadow = errors.New("warehouse: shadow tables")

// shadowView is the materialized view that fills a shadow's event_ids, as
// event_ids_mv fills the live one.
func shadowView(suffix string) string { return "event_ids_mv" + suffix }

// CheckShadowable refuses a layout the rebuild does not handle: on a
// cluster the tables are replicated per node with a Distributed table on
// top, and a rename must be done on every node in step.
func (db *DB) CheckShadowable() error {
	if db.cfg.Cluster != "" {
		return fmt.Errorf("%w: rebuild supports one server; JOURNEY_CLICKHOUSE_CLUSTER=%s is set", ErrShadow, db.cfg.Cluster)
	}
	return nil
}

// TableExists reports whether the table exists in journey's database.
func (db *DB) TableExists(ctx context.Context, name string) (bool, error) {
	var n uint64
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = ?", db.cfg.Database, name).Scan(&n); err != nil {
		return false, fmt.Errorf("warehouse: system.tables: %w", err)
	}
	return n > 0, nil
}

var createTableRE = regexp.MustCompile(`^CREATE TABLE\s+(\S+?)\s*\(`)

// CreateShadow creates events<suffix> and event_ids<suffix> with the DDL
// the server reports for the live tables (SHOW CREATE TABLE, renamed), so
// the shadow has every column and setting the migrations gave them, on
// 18.16 and on newer servers alike, plus the view that fills the shadow's
// index from its events. It is idempotent.
func (db *DB) CreateShadow(ctx context.Context, suffix string) error {
	if err := db.CheckShadowable(); err != nil {
		return err
	}
	for _, t := range ShadowTables {
		var ddl string
		if err := db.Conn.QueryRow(ctx, "SHOW CREATE TABLE "+db.cfg.Database+"."+t).Scan(&ddl); err != nil {
			return fmt.Errorf("warehouse: show create table %s: %w", t, err)
		}
		m := createTableRE.FindStringSubmatchIndex(ddl)
		if m == nil {
			return fmt.Errorf("%w: unexpected DDL for %s: %.80q", ErrShadow, t, ddl)
		}
		shadow := "CREATE TABLE IF NOT EXISTS " + db.cfg.Database + "." + t + suffix + " " + ddl[m[3]:]
		if err := db.Conn.Exec(ctx, shadow); err != nil {
			return fmt.Errorf("warehouse: create %s%s: %w", t, suffix, err)
		}
	}
	view := "CREATE MATERIALIZED VIEW IF NOT EXISTS " + shadowView(suffix) + " TO event_ids" + suffix +
		" AS SELECT id_hash, source, id, revision, content_hash, customer_id, stream_seq FROM events" + suffix
	if err := db.Conn.Exec(ctx, view); err != nil {
		return fmt.Errorf("warehouse: create %s: %w", shadowView(suffix), err)
	}
	return nil
}

// DropShadow drops the shadow's view and tables (those that exist).
func (db *DB) DropShadow(ctx context.Context, suffix string) error {
	stmts := []string{"DROP TABLE IF EXISTS " + shadowView(suffix)}
	for _, t := range ShadowTables {
		stmts = append(stmts, "DROP TABLE IF EXISTS "+t+suffix)
	}
	for _, s := range stmts {
		if err := db.Conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("warehouse: %s: %w", s, err)
		}
	}
	return nil
}

// InsertEventsInto is [DB.InsertEvents] into another table with the events
// columns (a shadow): the same column mapping, in one INSERT.
func (db *DB) InsertEventsInto(ctx context.Context, table string, rows []EventRow) error {
	if len(rows) == 0 {
		return nil
	}
	c := &eventColumns{}
	query := "INSERT INTO " + table + strings.TrimPrefix(insertEvents, "INSERT INTO events")
	return db.sendColumns(ctx, query, c.fill(rows))
}

// StoredVersionsIn is [DB.StoredVersions] against another identity index
// (a shadow's event_ids).
func (db *DB) StoredVersionsIn(ctx context.Context, idsTable string, hashes []uint64) (map[Identity]touchpoint.Version, error) {
	return db.storedVersions(ctx, idsTable, hashes)
}

// FingerprintMul spreads the revision over the fingerprint of a row:
// id_hash + revision*FingerprintMul (mod 2^64), so that two revisions of
// one event count as two rows in a checksum.
const FingerprintMul uint64 = 0x9E3779B97F4A7C15

// Fingerprint is one row's contribution to a [PartitionSum].
func Fingerprint(idHash uint64, revision uint32) uint64 {
	return idHash + uint64(revision)*FingerprintMul
}

// PartitionSum sums up one month partition of an events table: its rows,
// its distinct (source, id, revision) identities and two order-free
// checksums of them (wrapping sum and xor of [Fingerprint]), which equal a
// checksum of the sorted identities without sorting them.
type PartitionSum struct {
	Month    uint32 `json:"month"` // toYYYYMM(time), UTC
	Rows     uint64 `json:"rows"`
	Distinct uint64 `json:"distinct"`
	Sum      uint64 `json:"sum"`
	Xor      uint64 `json:"xor"`
}

// PartitionSums returns the table's [PartitionSum]s by month, ascending.
// maxSeq > 0 counts only rows with stream_seq <= maxSeq.
func (db *DB) PartitionSums(ctx context.Context, table string, maxSeq uint64) ([]PartitionSum, error) {
	where, fp := seqFilter(maxSeq), fingerprint()
	q := "SELECT toUInt32(toYYYYMM(time)) AS m, count(), uniqExact(id_hash, revision), sum(" + fp + "), groupBitXor(" + fp + ")" +
		" FROM " + table + where + " GROUP BY m ORDER BY m"
	return db.queryPartitionSums(ctx, table, q)
}

// seqFilter is the WHERE clause that keeps rows with stream_seq <= maxSeq
// (none for 0).
func seqFilter(maxSeq uint64) string {
	if maxSeq == 0 {
		return ""
	}
	return fmt.Sprintf(" WHERE stream_seq <= %d", maxSeq)
}

// fingerprint is the per-row value the checksums add and xor: one number for
// an identity and revision.
func fingerprint() string { return fmt.Sprintf("id_hash + revision * %d", FingerprintMul) }

// queryPartitionSums runs q, which selects (month, rows, distinct, sum, xor).
func (db *DB) queryPartitionSums(ctx context.Context, table, q string) ([]PartitionSum, error) {
	return queryRows(ctx, db, "checksums of "+table, func(r rowScanner) (PartitionSum, error) {
		var p PartitionSum
		err := r.Scan(&p.Month, &p.Rows, &p.Distinct, &p.Sum, &p.Xor)
		return p, err
	}, q)
}

// CountRows returns the number of rows of a table.
func (db *DB) CountRows(ctx context.Context, table string) (uint64, error) {
	var n uint64
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM "+table).Scan(&n); err != nil {
		return 0, fmt.Errorf("warehouse: count %s: %w", table, err)
	}
	return n, nil
}

// MaxStreamSeq returns the highest stream_seq in an events table (0 when empty).
func (db *DB) MaxStreamSeq(ctx context.Context, table string) (uint64, error) {
	var n uint64
	if err := db.Conn.QueryRow(ctx, "SELECT max(stream_seq) FROM "+table).Scan(&n); err != nil {
		return 0, fmt.Errorf("warehouse: max stream_seq of %s: %w", table, err)
	}
	return n, nil
}

const eventColumnList = `stream_seq, id, source, type, kind, customer_id, time, time_ms, ingested_at,
 ext_keys, ext_values, account_id, contact_id, dmu_role, channel, campaign, status, amount_cents, currency,
 items, score, quote_id, order_id, complaint_id, survey_id, category, severity, data, id_hash, content_hash, revision`

// CopyMissing copies into table `to` the rows of table `from` with
// stream_seq > afterSeq whose (id_hash, revision) the index toIDs does not
// hold, one row per identity, server-side (INSERT ... SELECT, named
// columns). It returns how many rows qualified. Run again, it copies
// nothing twice: that is what makes a copy interrupted by a kill, and
// the final catch-up of a swap, safe to repeat.
func (db *DB) CopyMissing(ctx context.Context, from, to, toIDs string, afterSeq uint64) (uint64, error) {
	return db.copyWhere(ctx, from, to, toIDs, fmt.Sprintf("stream_seq > %d", afterSeq))
}

// copyWhere copies the rows of from that match cond and whose identity
// toIDs lacks, one row per identity, and returns how many qualified.
func (db *DB) copyWhere(ctx context.Context, from, to, toIDs, cond string) (uint64, error) {
	sel := fmt.Sprintf(" FROM %s WHERE %s AND (id_hash, revision) NOT IN (SELECT id_hash, revision FROM %s)", from, cond, toIDs)
	var n uint64
	if err := db.Conn.QueryRow(ctx, "SELECT uniqExact(id_hash, revision)"+sel).Scan(&n); err != nil {
		return 0, fmt.Errorf("warehouse: copy %s to %s: %w", from, to, err)
	}
	if n == 0 {
		return 0, nil
	}
	q := "INSERT INTO " + to + " (" + eventColumnList + ") SELECT " + eventColumnList + sel + " ORDER BY stream_seq LIMIT 1 BY id_hash, revision"
	if err := db.Conn.Exec(ctx, q); err != nil {
		return 0, fmt.Errorf("warehouse: copy %s to %s: %w", from, to, err)
	}
	return n, nil
}

// Months returns the month partitions (toYYYYMM(time)) of an events table.
func (db *DB) Months(ctx context.Context, table string) ([]uint32, error) {
	rows, err := db.Conn.Query(ctx, "SELECT DISTINCT toUInt32(toYYYYMM(time)) AS m FROM "+table+" ORDER BY m")
	if err != nil {
		return nil, fmt.Errorf("warehouse: months of %s: %w", table, err)
	}
	defer rows.Close()
	var out []uint32
	for rows.Next() {
		var m uint32
		if err := rows.Scan(&m); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// CopyMonth is [DB.CopyMissing] of one month partition, all stream
// sequences: the --from-table source of a rebuild.
func (db *DB) CopyMonth(ctx context.Context, from, to, toIDs string, month uint32) (uint64, error) {
	return db.copyWhere(ctx, from, to, toIDs, fmt.Sprintf("toYYYYMM(time) = %d", month))
}

// CanExchange reports whether the server swaps two tables atomically with
// EXCHANGE TABLES: an Atomic database (the default from 20.10) on 21.x or
// newer. 18.16 has neither.
func (db *DB) CanExchange(ctx context.Context) (bool, error) {
	if db.Features.Major < 21 {
		return false, nil
	}
	var engine string
	if err := db.Conn.QueryRow(ctx, "SELECT engine FROM system.databases WHERE name = ?", db.cfg.Database).Scan(&engine); err != nil {
		return false, fmt.Errorf("warehouse: system.databases: %w", err)
	}
	return engine == "Atomic", nil
}

// Swap puts the tables t<from> in the place of the tables t (t in
// [ShadowTables]) and keeps the live ones as t<keep>; it returns the
// method used ("rename" or "exchange").
//
// Without EXCHANGE it is one RENAME TABLE per pair, events first: an
// INSERT runs wholly before a rename or wholly after it. Not one statement
// for all four tables: 18.16 locks the tables of a RENAME in name order
// (event_ids before events) while an INSERT into events holds events and
// then wants event_ids for the view, and the two wait for each other for
// ever (neither KILL QUERY nor a timeout ends it). Between the two renames
// an insert into the new events indexes its rows in the old event_ids (the
// view names its target); after the second, the new index gets the new
// table's rows after afterSeq that it lacks. Callers hold the writers'
// fence meanwhile, so that normally nothing is inserted in between.
//
// The view that fills event_ids from events follows the tables on either
// server: on 18.16 views name their source and target, so event_ids_mv
// now reads the new events into the new event_ids; where views follow the
// table itself, the shadow's own view came along with it.
func (db *DB) Swap(ctx context.Context, from, keep string, afterSeq uint64) (string, error) {
	todo, err := db.swapTodo(ctx, from, keep)
	if err != nil {
		return "", err
	}
	exchange, err := db.CanExchange(ctx)
	if err != nil {
		return "", err
	}
	if exchange {
		for _, t := range todo {
			if err := db.Conn.Exec(ctx, "EXCHANGE TABLES "+t+" AND "+t+from); err != nil {
				return "", fmt.Errorf("warehouse: exchange %s: %w", t, err)
			}
			if err := db.Conn.Exec(ctx, "RENAME TABLE "+t+from+" TO "+t+keep); err != nil {
				return "", fmt.Errorf("warehouse: rename after exchange: %w", err)
			}
		}
		return "exchange", nil
	}
	for _, t := range todo {
		if err := db.Conn.Exec(ctx, "RENAME TABLE "+t+" TO "+t+keep+", "+t+from+" TO "+t); err != nil {
			return "", fmt.Errorf("warehouse: rename %s: %w", t, err)
		}
	}
	q := fmt.Sprintf("INSERT INTO event_ids (id_hash, source, id, revision, content_hash, customer_id, stream_seq)"+
		" SELECT id_hash, source, id, revision, content_hash, customer_id, stream_seq FROM events"+
		" WHERE stream_seq > %d AND (id_hash, revision) NOT IN (SELECT id_hash, revision FROM event_ids)", afterSeq)
	if err := db.Conn.Exec(ctx, q); err != nil {
		return "", fmt.Errorf("warehouse: index the rows written between the renames: %w", err)
	}
	return "rename", nil
}

// swapTodo returns the pairs still to swap: a pair whose t<keep> exists
// and whose t<from> is gone was swapped by an earlier, interrupted run.
func (db *DB) swapTodo(ctx context.Context, from, keep string) ([]string, error) {
	if err := db.CheckShadowable(); err != nil {
		return nil, err
	}
	exists := func(name string) (bool, error) { return db.TableExists(ctx, name) }
	var todo []string
	for _, t := range ShadowTables {
		kept, err := exists(t + keep)
		if err != nil {
			return nil, err
		}
		shadow, err := exists(t + from)
		if err != nil {
			return nil, err
		}
		live, err := exists(t)
		if err != nil {
			return nil, err
		}
		switch {
		case kept && !shadow && live:
			continue // done before
		case kept:
			return nil, fmt.Errorf("%w: table %s exists already (drop it, or roll back first)", ErrShadow, t+keep)
		case !shadow || !live:
			return nil, fmt.Errorf("%w: %s and %s must both exist", ErrShadow, t, t+from)
		}
		todo = append(todo, t)
	}
	return todo, nil
}

// DistinctPartitionSums is [DB.PartitionSums] over the table's distinct
// (id_hash, revision): what a copy of it with one row per identity holds.
func (db *DB) DistinctPartitionSums(ctx context.Context, table string, maxSeq uint64) ([]PartitionSum, error) {
	where, fp := seqFilter(maxSeq), fingerprint()
	q := "SELECT m, count(), count(), sum(fp), groupBitXor(fp) FROM (SELECT toUInt32(toYYYYMM(any(time))) AS m, " + fp + " AS fp" +
		" FROM " + table + where + " GROUP BY id_hash, revision) GROUP BY m ORDER BY m"
	return db.queryPartitionSums(ctx, table, q)
}
