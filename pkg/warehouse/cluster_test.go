package warehouse_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/klantreis/journey/pkg/warehouse"
)

var (
	createTable = regexp.MustCompile(`(?s)^CREATE TABLE IF NOT EXISTS (\w+) .*ENGINE = (\w+)`)
	createMV    = regexp.MustCompile(`(?s)^CREATE MATERIALIZED VIEW IF NOT EXISTS \w+ TO (\w+) AS.*FROM (\w+)`)
	alterTable  = regexp.MustCompile(`^ALTER TABLE (\w+) `)
)

// Every table any migration creates, now or later, is replicated on a
// cluster: a migration that writes a plain engine instead of the template
// function fails here.
func TestClusterLayoutReplicatesEveryTable(t *testing.T) {
	for _, f := range []warehouse.Features{{Major: 18, Minor: 16}, {Major: 24, Minor: 8, DateTime64: true, LowCardinality: true}} {
		ms, err := warehouse.MigrationsFor(f, warehouse.Layout{Cluster: "c1", Database: "db1"})
		if err != nil {
			t.Fatal(err)
		}
		tables := 0
		for _, m := range ms {
			for _, stmt := range m.SQL {
				if g := createTable.FindStringSubmatch(stmt); g != nil {
					tables++
					if !strings.HasSuffix(g[1], "_local") || !strings.HasPrefix(g[2], "Replicated") {
						t.Errorf("%s on %s: table %s with engine %s, want NAME_local with a Replicated engine", m.Name, f.Version(), g[1], g[2])
					}
					if !strings.Contains(stmt, "'/clickhouse/tables/{shard}/db1/"+g[1]+"', '{replica}'") {
						t.Errorf("%s: %s has no per-database replica path:\n%s", m.Name, g[1], stmt)
					}
				}
				if g := createMV.FindStringSubmatch(stmt); g != nil && (!strings.HasSuffix(g[1], "_local") || !strings.HasSuffix(g[2], "_local")) {
					t.Errorf("%s: materialized view from %s to %s, want local tables on both ends", m.Name, g[2], g[1])
				}
				if g := alterTable.FindStringSubmatch(stmt); g != nil && !strings.HasSuffix(g[1], "_local") {
					t.Errorf("%s: ALTER of %s, want the local table", m.Name, g[1])
				}
			}
		}
		if tables < 6 {
			t.Errorf("only %d tables found: the pattern no longer matches the migrations", tables)
		}
	}
	// On one server nothing changes.
	ms, err := warehouse.Migrations(warehouse.Features{Major: 18, Minor: 16})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		for _, stmt := range m.SQL {
			if strings.Contains(stmt, "Replicated") || strings.Contains(stmt, "_local") {
				t.Errorf("%s on one server:\n%s", m.Name, stmt)
			}
		}
	}
}
