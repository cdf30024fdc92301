package warehouse

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// DeadRow is one row of events_dead (schemas/clickhouse/0002_events_dead.sql):
// a message a consumer could not store, with why.
type DeadRow struct {
	Consumer  string
	StreamSeq uint64
	Subject   string
	Headers   string // the message headers as JSON
	Raw       string // the message body as received
	// ErrorClass is a short, low-cardinality reason (decode, invalid,
	// unknown_type, rejected); ErrorText is the full error.
	ErrorClass    string
	ErrorText     string
	DeliveryCount uint32
	DeadAt        time.Time
}

const insertDead = `INSERT INTO events_dead (consumer, stream_seq, subject, headers, raw, error_class, error_text, delivery_count, dead_at)`

// InsertDead writes dead rows in one INSERT.
func (db *DB) InsertDead(ctx context.Context, rows []DeadRow) error {
	if len(rows) == 0 {
		return nil
	}
	n := len(rows)
	consumer, subject, headers, raw, class, text := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	seq, delivered, at := make([]uint64, n), make([]uint32, n), make([]time.Time, n)
	for i, r := range rows {
		consumer[i], seq[i], subject[i], headers[i], raw[i] = r.Consumer, r.StreamSeq, r.Subject, r.Headers, r.Raw
		class[i], text[i], delivered[i], at[i] = r.ErrorClass, r.ErrorText, r.DeliveryCount, r.DeadAt.UTC()
	}
	return db.sendColumns(ctx, insertDead, []any{consumer, seq, subject, headers, raw, class, text, delivered, at})
}

// ExistingDeadSeqs returns which of seqs already have a row in events_dead
// for the consumer. The table is small by design (poison only), so the
// filter on the first key column is enough.
func (db *DB) ExistingDeadSeqs(ctx context.Context, consumer string, seqs []uint64) (map[uint64]bool, error) {
	found := map[uint64]bool{}
	for start := 0; start < len(seqs); start += identityChunk {
		chunk := seqs[start:min(start+identityChunk, len(seqs))]
		vals := make([]any, len(chunk))
		for i, s := range chunk {
			vals[i] = s
		}
		rows, err := db.Conn.Query(ctx, "SELECT stream_seq FROM events_dead WHERE consumer = ? AND stream_seq IN ?",
			consumer, clickhouse.GroupSet{Value: vals})
		if err != nil {
			return nil, fmt.Errorf("warehouse: check events_dead: %w", err)
		}
		for rows.Next() {
			var s uint64
			if err := rows.Scan(&s); err != nil {
				rows.Close()
				return nil, fmt.Errorf("warehouse: check events_dead: %w", err)
			}
			found[s] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("warehouse: check events_dead: %w", err)
		}
	}
	return found, nil
}
