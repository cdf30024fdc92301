package privacy

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"

	"github.com/klantreis/journey/pkg/warehouse"
)

// whereFunc selects a batch of customers' rows in a table.
type whereFunc func(customers []string) (string, []any)

// knownTables are the tables journey's migrations create that hold
// customers' rows, in erasure order, with how to select a customer's rows.
var knownTables = []struct {
	name  string
	where whereFunc
}{
	{"events", byCustomerID},
	{"event_ids", byCustomerID},
	{"events_dead", bySubjectOrHeader},
	{"customer_state", byCustomerID},
	{"stage_transitions", byCustomerID},
	{"satisfaction_responses", byCustomerID},
	{"account_state", byViewMember},
}

// keptTables are the tables the erasure leaves alone, with why.
var keptTables = map[string]string{
	"schema_migrations":      "the migrations applied: versions and times, no personal data",
	"ops_audit":              "the operators' audit trail: actors, actions and selections by sequence or erasure id (an erasure's names only hashes), no customer id",
	"deadletter_resolutions": "what became of a dead letter: consumer, sequences, source and event id, no customer id (the dead letter itself is erased from events_dead)",
	"account_transitions":    "an account's stage changes with their cause event ids; no customer or contact id",
}

// shadow matches the tables a rebuild or a migration keeps beside a table
// (events__rebuild, events__v2, events__old) and a cluster's replicated
// table under its Distributed one (events_local): they hold the same rows
// and are erased by the same condition.
var shadow = regexp.MustCompile(`^(.+?)(__rebuild|__old|__v[0-9]+)?(_local)?$`)

// Table is a table as system.tables and system.columns list it.
type Table struct {
	Name    string
	Engine  string
	Columns []string
}

// Coverage is what the erasure does to a table: erase it with Where, or
// keep it for Reason. A table that is neither is not covered: [Classify]
// returns an error for it.
type Coverage struct {
	Erase  bool
	Where  whereFunc
	Reason string
}

// Classify decides what the erasure does to t. Views store nothing (a
// materialized view's rows live in its TO table or its .inner table, which
// is listed on its own); a Distributed table reads its _local tables,
// which are erased. A table journey does not know is erased by its
// customer_id column when it has one (a table added later is covered
// without a change here); any other table is an error that names it, so
// that it is added to the inventory instead of being missed.
func Classify(t Table) (Coverage, error) {
	switch t.Engine {
	case "View", "MaterializedView", "LiveView", "WindowView":
		return Coverage{Reason: "a view: it stores nothing itself"}, nil
	case "Distributed":
		return Coverage{Reason: "a Distributed table: it reads the _local tables, which are erased"}, nil
	}
	base := t.Name
	if m := shadow.FindStringSubmatch(t.Name); m != nil {
		base = m[1]
	}
	if r, ok := keptTables[base]; ok {
		return Coverage{Reason: r}, nil
	}
	for _, k := range knownTables {
		if k.name == base {
			return Coverage{Erase: true, Where: k.where}, nil
		}
	}
	if slices.Contains(t.Columns, "customer_id") {
		return Coverage{Erase: true, Where: byCustomerID}, nil
	}
	return Coverage{}, fmt.Errorf("%w: table %s (engine %s) is not in the privacy inventory and has no customer_id column: add it to pkg/privacy (erased or kept, with why)", ErrUncovered, t.Name, t.Engine)
}

// ListTables lists the tables of db's database with their columns.
func ListTables(ctx context.Context, db *warehouse.DB) ([]Table, error) {
	rows, err := db.Conn.Query(ctx, "SELECT name, engine FROM system.tables WHERE database = currentDatabase()")
	if err != nil {
		return nil, fmt.Errorf("privacy: list tables: %w", err)
	}
	byName := map[string]*Table{}
	var out []*Table
	for rows.Next() {
		t := &Table{}
		if err := rows.Scan(&t.Name, &t.Engine); err != nil {
			rows.Close()
			return nil, err
		}
		byName[t.Name] = t
		out = append(out, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = db.Conn.Query(ctx, "SELECT table, name FROM system.columns WHERE database = currentDatabase()")
	if err != nil {
		return nil, fmt.Errorf("privacy: list columns: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var table, col string
		if err := rows.Scan(&table, &col); err != nil {
			return nil, err
		}
		if t := byName[table]; t != nil {
			t.Columns = append(t.Columns, col)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	res := make([]Table, len(out))
	for i, t := range out {
		res[i] = *t
	}
	// Known tables first, in their order, then the rest by name.
	rank := func(name string) int {
		base := name
		if m := shadow.FindStringSubmatch(name); m != nil {
			base = m[1]
		}
		for i, k := range knownTables {
			if k.name == base {
				return i
			}
		}
		return len(knownTables)
	}
	sort.SliceStable(res, func(i, j int) bool {
		ri, rj := rank(res[i].Name), rank(res[j].Name)
		if ri != rj {
			return ri < rj
		}
		return res[i].Name < res[j].Name
	})
	return res, nil
}

// tableStores are the erasure's stores of the live tables.
func tableStores(ctx context.Context, db *warehouse.DB) ([]tableStore, error) {
	tables, err := ListTables(ctx, db)
	if err != nil {
		return nil, err
	}
	var out []tableStore
	for _, t := range tables {
		c, err := Classify(t)
		if err != nil {
			return nil, err
		}
		if c.Erase {
			out = append(out, tableStore{db: db, table: table{name: t.Name, where: c.Where}})
		}
	}
	return out, nil
}
