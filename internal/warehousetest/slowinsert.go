package warehousetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/klantreis/journey/pkg/warehouse"
)

// SlowInsert starts, under query id qid, an INSERT into table of the
// first row of source matching where (both with the events table's
// columns), held open 3 s by sleep: what a process killed during an insert
// leaves behind, a statement whose rows land after the kill. It returns
// once the statement shows in system.processes; the channel yields its
// error when it ends. The sleep runs once, on the one block left after
// the LIMIT (no predicate is pushed through a LIMIT), so the statement
// holds 3 s however many parts source has.
func SlowInsert(t testing.TB, db *warehouse.DB, qid, table, source, where string) <-chan error {
	t.Helper()
	ctx := context.Background()
	rows, err := db.Conn.Query(ctx, "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = 'events'")
	if err != nil {
		t.Fatal(err)
	}
	var cols []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, name)
	}
	rows.Close()
	list := strings.Join(cols, ", ")
	q := "INSERT INTO " + table + " (" + list + ") SELECT " + list +
		" FROM (SELECT " + list + " FROM " + source + " WHERE " + where + " LIMIT 1) WHERE sleep(3) = 0"
	done := make(chan error, 1)
	go func() { done <- db.Conn.Exec(warehouse.WithQueryID(ctx, qid), q) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n uint64
		if err := db.Conn.QueryRow(ctx, "SELECT count() FROM system.processes WHERE query_id = ?", qid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			return done
		}
		select {
		case err := <-done:
			t.Fatalf("the slow insert ended before it was seen running: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the slow insert did not show in system.processes within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
