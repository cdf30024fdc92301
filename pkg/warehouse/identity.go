package warehouse

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"

	"github.com/klantreis/journey/pkg/touchpoint"
)

// Identity is an event's (source, id): what makes two messages one event.
type Identity struct {
	Source, ID string
}

// identityChunk bounds one events_dead check, whose stream sequences
// travel as query text (up to 20 digits and a comma each) under the
// server's max_query_size of 256 KiB: 8 000 stay under 170 KiB.
const identityChunk = 8000

// StoredVersions returns, for the identities whose hash is in hashes, the
// highest revision stored in the identity index (event_ids) and its
// content hash. Hash collisions are resolved by comparing (source, id).
// An identity absent from the result has no row.
func (db *DB) StoredVersions(ctx context.Context, hashes []uint64) (map[Identity]touchpoint.Version, error) {
	// The local table: external data does not travel to the replicas a
	// Distributed read would ask, and with the insert quorum the local
	// replica holds every acknowledged row.
	return db.storedVersions(ctx, db.local("event_ids"), hashes)
}

func (db *DB) storedVersions(ctx context.Context, table string, hashes []uint64) (map[Identity]touchpoint.Version, error) {
	found := make(map[Identity]touchpoint.Version)
	// The hashes travel as external data, a binary column beside the
	// query: as query text the server spent more time parsing a batch's
	// hashes than looking them up (BenchmarkStoredVersions, perf-writer.md).
	ids, err := ext.NewTable("batch_ids", ext.Column("h", "UInt64"))
	if err != nil {
		return nil, fmt.Errorf("warehouse: check identities: %w", err)
	}
	for _, h := range hashes {
		if err := ids.Append(h); err != nil {
			return nil, fmt.Errorf("warehouse: check identities: %w", err)
		}
	}
	qctx := clickhouse.Context(ctx, append(db.readOwnWrites(), clickhouse.WithExternalTable(ids))...)
	rows, err := db.Conn.Query(qctx, "SELECT source, id, revision, content_hash FROM "+table+" WHERE id_hash IN (SELECT h FROM batch_ids)")
	if err != nil {
		return nil, fmt.Errorf("warehouse: check identities: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k Identity
		var v touchpoint.Version
		if err := rows.Scan(&k.Source, &k.ID, &v.Revision, &v.Content); err != nil {
			return nil, fmt.Errorf("warehouse: check identities: %w", err)
		}
		if old, ok := found[k]; !ok || v.Revision > old.Revision {
			found[k] = v
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("warehouse: check identities: %w", err)
	}
	return found, nil
}

// backfillIdentities indexes the events stored before migration 12: they
// have no id_hash, and the hashes are computed in Go (18.16 has no
// xxHash64). Running it twice only writes index entries twice, which the
// check reads as one.
func backfillIdentities(ctx context.Context, db *DB) error {
	rows, err := db.Conn.Query(ctx, `SELECT source, id, type, customer_id, time_ms, data, stream_seq FROM events WHERE id_hash = 0`)
	if err != nil {
		return fmt.Errorf("backfill identities: %w", err)
	}
	defer rows.Close()
	const batch = 50000
	var cols identityColumns
	flush := func() error {
		if len(cols.hash) == 0 {
			return nil
		}
		err := db.sendColumns(ctx, insertIdentities, cols.all())
		cols = identityColumns{}
		return err
	}
	for rows.Next() {
		var e touchpoint.Event
		var ms int64
		var data string
		var seq uint64
		if err := rows.Scan(&e.Source, &e.ID, &e.Type, &e.Subject, &ms, &data, &seq); err != nil {
			return fmt.Errorf("backfill identities: %w", err)
		}
		e.Time, e.Data = time.UnixMilli(ms), []byte(data)
		cols.add(&e, seq)
		if len(cols.hash) >= batch {
			if err := flush(); err != nil {
				return fmt.Errorf("backfill identities: %w", err)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("backfill identities: %w", err)
	}
	if err := flush(); err != nil {
		return fmt.Errorf("backfill identities: %w", err)
	}
	return nil
}

const insertIdentities = `INSERT INTO event_ids (id_hash, source, id, revision, content_hash, customer_id, stream_seq)`

type identityColumns struct {
	hash, content, seq   []uint64
	source, id, customer []string
	revision             []uint32
}

func (c *identityColumns) add(e *touchpoint.Event, seq uint64) {
	c.hash = append(c.hash, touchpoint.IdentityHash(e.Source, e.ID))
	c.source, c.id = append(c.source, e.Source), append(c.id, e.ID)
	c.revision = append(c.revision, 0) // rows before migration 12 predate corrections
	c.content = append(c.content, touchpoint.ContentHash(e))
	c.customer, c.seq = append(c.customer, e.Subject), append(c.seq, seq)
}

func (c *identityColumns) all() []any {
	return []any{c.hash, c.source, c.id, c.revision, c.content, c.customer, c.seq}
}

// IndexIdentities writes the identity index entries of rows directly,
// not through event_ids_mv. The writer calls it after an INSERT that
// followed an attempt of uncertain outcome: on a replicated table the
// retried block may be dropped as a duplicate of the first attempt's,
// and a materialized view does not fire for a dropped block (18.16) —
// while the first attempt may have stored the events and not their index
// entries (the replica died between the two). An entry written twice is
// read as one.
func (db *DB) IndexIdentities(ctx context.Context, rows []EventRow) error {
	var c identityColumns
	for i := range rows {
		r := &rows[i]
		c.hash, c.content, c.seq = append(c.hash, r.IDHash), append(c.content, r.ContentHash), append(c.seq, r.StreamSeq)
		c.source, c.id, c.customer = append(c.source, r.Source), append(c.id, r.ID), append(c.customer, r.CustomerID)
		c.revision = append(c.revision, r.Revision)
	}
	if len(c.hash) == 0 {
		return nil
	}
	return db.sendColumns(ctx, insertIdentities, c.all())
}
