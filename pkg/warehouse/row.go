package warehouse

import (
	"context"
	"fmt"
)

// InsertRow writes one row with query, an "INSERT INTO t (cols…)" without
// VALUES, through a prepared batch. Exec of an INSERT with inline VALUES
// and bound arguments never returns on 18.16 over the native protocol: the
// server sends the block header and waits for a data block the client
// does not send. On a cluster the row goes to the local replicated table.
func (db *DB) InsertRow(ctx context.Context, query string, vals ...any) error {
	b, err := db.Conn.PrepareBatch(ctx, db.localInsert(query))
	if err != nil {
		return fmt.Errorf("warehouse: prepare insert: %w", err)
	}
	if err := b.Append(vals...); err != nil {
		_ = b.Abort()
		return fmt.Errorf("%w: %v", ErrRejected, err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("warehouse: insert: %w", err)
	}
	return nil
}
