package warehouse

import (
	"context"
	"fmt"
)

// queryRows runs q and reads every row with scan, in order: the loop of
// the package's list queries. A failed query or scan is wrapped as
// "warehouse: <what>: …"; the error that ends the rows is returned as the
// driver gave it, as those queries always have. No rows is a nil slice.
func queryRows[T any](ctx context.Context, db *DB, what string, scan func(rowScanner) (T, error), q string, args ...any) ([]T, error) {
	rows, err := db.Conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("warehouse: %s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("warehouse: %s: %w", what, err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// queryFirst reads the first row of q with scan, or ErrNotFound when q
// has none: the lookup of one customer's or one account's latest row.
// Errors are wrapped as "warehouse: <what>: …".
func queryFirst[T any](ctx context.Context, db *DB, what string, scan func(rowScanner) (T, error), q string, args ...any) (T, error) {
	var zero T
	rows, err := db.Conn.Query(ctx, q, args...)
	if err != nil {
		return zero, fmt.Errorf("warehouse: %s: %w", what, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return zero, fmt.Errorf("warehouse: %s: %w", what, err)
		}
		return zero, ErrNotFound
	}
	v, err := scan(rows)
	if err != nil {
		return zero, fmt.Errorf("warehouse: %s: %w", what, err)
	}
	return v, nil
}
