package warehouse

import (
	"context"
	"fmt"
	"strings"
	"text/template"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// Layout is where the migrations put the tables: one server (the zero
// value) or a replicated cluster (Config.Cluster).
//
// On a cluster every table a migration creates with the template functions
//
//	CREATE TABLE IF NOT EXISTS {{table "t"}} (…) ENGINE = {{engine "t" "ReplacingMergeTree(version)"}}
//
// is t_local with ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/DB/t_local',
// '{replica}', version) on each node, and [DB.Migrate] gives every such table a
// Distributed t over the cluster, with the same columns, for reads (views read
// the plain names). Materialized views and ALTERs name {{table "t"}}: a
// materialized view fires on inserts into its source, which are the local
// tables. On one server both functions return the plain name and engine.
type Layout struct {
	// Cluster is the <remote_servers> cluster; empty on one server.
	Cluster string
	// Database goes into the ZooKeeper/Keeper path, so that two databases
	// on one cluster (the tests') do not share replicas.
	Database string
}

// localSuffix names the replicated table under a Distributed one.
const localSuffix = "_local"

func (l Layout) funcs() template.FuncMap {
	return template.FuncMap{
		"table": func(name string) string {
			if l.Cluster == "" {
				return name
			}
			return name + localSuffix
		},
		"engine": func(name, engine string) (string, error) {
			if l.Cluster == "" {
				return engine, nil
			}
			base, args, _ := strings.Cut(engine, "(")
			args = strings.TrimSuffix(args, ")")
			if !strings.HasSuffix(base, "MergeTree") || strings.HasPrefix(base, "Replicated") {
				return "", fmt.Errorf("engine %q: want a *MergeTree engine without Replicated", engine)
			}
			path := "'/clickhouse/tables/{shard}/" + l.Database + "/" + name + localSuffix + "', '{replica}'"
			if args != "" {
				path += ", " + args
			}
			return "Replicated" + base + "(" + path + ")", nil
		},
	}
}

func (db *DB) layout() Layout {
	return Layout{Cluster: db.cfg.Cluster, Database: db.cfg.Database}
}

// local is the table an INSERT or a read-your-writes check uses: the
// replicated table on a cluster, the table itself on one server.
func (db *DB) local(table string) string {
	if db.cfg.Cluster == "" {
		return table
	}
	return table + localSuffix
}

// localInsert points an "INSERT INTO t (…)" at the local table on a
// cluster: through the Distributed table an insert is queued and sent
// later (18.16's default), so neither the quorum nor replicated block
// deduplication of the retried batch would hold.
func (db *DB) localInsert(query string) string {
	const p = "INSERT INTO "
	if db.cfg.Cluster == "" || !strings.HasPrefix(query, p) {
		return query
	}
	name, rest, _ := strings.Cut(query[len(p):], " ")
	return p + db.local(name) + " " + rest
}

// readOwnWrites is the context of a check that must see every insert the
// quorum acknowledged (select_sequential_consistency).
func (db *DB) readOwnWrites() []clickhouse.QueryOption {
	if db.cfg.Cluster == "" || db.cfg.InsertQuorum < 2 {
		return nil
	}
	return []clickhouse.QueryOption{clickhouse.WithSettings(clickhouse.Settings{"select_sequential_consistency": 1})}
}

// migrateCluster migrates the nodes of Addr in lockstep, migration by
// migration: each node holds its own local tables, views, Distributed
// tables and schema_migrations, created on every node; an ALTER of a
// replicated table runs on the first node only (replication carries it to
// the others, which are waited for). A replica created later, with the
// first migration's columns, would not match its peers in ZooKeeper: every
// node must answer when migrations are applied (docs/scaling.md).
func (db *DB) migrateCluster(ctx context.Context) ([]Migration, error) {
	var nodes []*DB
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
	}()
	applied := map[*DB]map[int]bool{}
	addrs, err := Addrs(db.cfg.Addr)
	if err != nil {
		return nil, err
	}
	for _, addr := range addrs {
		n, err := db.openNode(ctx, addr)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
		if err := n.Conn.Exec(ctx, createSchemaMigrations); err != nil {
			return nil, fmt.Errorf("warehouse: %s: create schema_migrations: %w", n.cfg.Addr, err)
		}
		if applied[n], err = n.appliedMigrations(ctx); err != nil {
			return nil, err
		}
	}
	all, err := MigrationsFor(db.Features, db.layout())
	if err != nil {
		return nil, err
	}
	var done []Migration
	for _, m := range all {
		var todo []*DB
		for _, n := range nodes {
			if !applied[n][m.Version] {
				todo = append(todo, n)
			}
		}
		if len(todo) == 0 {
			continue
		}
		if err := db.applyOnNodes(ctx, m, nodes, todo); err != nil {
			return done, err
		}
		done = append(done, m)
	}
	return done, nil
}

// Replicas opens one connection to each server of Addr on a cluster, for
// a check that must hold on every replica rather than on the one the pool
// picks (an erasure's rows gone from each: pkg/privacy). On one server it
// returns nil. The caller closes them; a server that cannot be reached is
// an error, so the check is retried rather than passed without it.
func (db *DB) Replicas(ctx context.Context) ([]*DB, error) {
	if db.cfg.Cluster == "" {
		return nil, nil
	}
	addrs, err := Addrs(db.cfg.Addr)
	if err != nil {
		return nil, err
	}
	var out []*DB
	for _, addr := range addrs {
		c := db.cfg
		c.Addr = addr
		conn, err := connect(c, c.Database)
		if err == nil {
			err = conn.Ping(ctx)
		}
		if err != nil {
			for _, n := range out {
				n.Close()
			}
			if conn != nil {
				conn.Close()
			}
			return nil, fmt.Errorf("warehouse: replica %s: %w", addr, err)
		}
		out = append(out, &DB{Conn: conn, Features: db.Features, cfg: c})
	}
	return out, nil
}

// Addr is the server address list the pool was opened with.
func (db *DB) Addr() string { return db.cfg.Addr }

func (db *DB) openNode(ctx context.Context, addr string) (*DB, error) {
	c := db.cfg
	c.Addr = addr
	boot, err := connect(c, "default")
	if err != nil {
		return nil, err
	}
	err = boot.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+c.Database)
	boot.Close()
	if err != nil {
		return nil, fmt.Errorf("warehouse: %s: create database %s: %w", addr, c.Database, err)
	}
	conn, err := connect(c, c.Database)
	if err != nil {
		return nil, err
	}
	return &DB{Conn: conn, Features: db.Features, cfg: c}, nil
}

// applyOnNodes applies one migration: on the nodes in todo, and for a
// replicated ALTER on the first node of all (it may be the one that did
// not record it yet).
func (db *DB) applyOnNodes(ctx context.Context, m Migration, all, todo []*DB) error {
	for i, stmt := range m.SQL {
		if table, ok := replicatedAlter(stmt); ok {
			if err := all[0].Conn.Exec(ctx, stmt); err != nil && !columnExists(stmt, err) {
				return fmt.Errorf("warehouse: %s: migration %s statement %d: %w", all[0].cfg.Addr, m.Name, i+1, err)
			}
			for _, n := range all[1:] {
				if err := n.waitColumns(ctx, all[0], table); err != nil {
					return fmt.Errorf("warehouse: migration %s statement %d: %w", m.Name, i+1, err)
				}
			}
			continue
		}
		for _, n := range todo {
			// A view reads the plain (Distributed) names, and 18.16 checks
			// that they exist: the tables this migration just created get
			// theirs first.
			if createsView(stmt) {
				if err := n.syncDistributed(ctx); err != nil {
					return fmt.Errorf("warehouse: %s: migration %s statement %d: %w", n.cfg.Addr, m.Name, i+1, err)
				}
			}
			if err := n.Conn.Exec(ctx, stmt); err != nil && !columnExists(stmt, err) {
				return fmt.Errorf("warehouse: %s: migration %s statement %d: %w", n.cfg.Addr, m.Name, i+1, err)
			}
		}
	}
	for _, n := range todo {
		if err := n.syncDistributed(ctx); err != nil {
			return fmt.Errorf("warehouse: %s: migration %s: %w", n.cfg.Addr, m.Name, err)
		}
	}
	if step := goSteps[m.Version]; step != nil {
		// Once: its inserts into replicated tables reach every replica.
		if err := step(ctx, todo[0]); err != nil {
			return fmt.Errorf("warehouse: migration %s: %w", m.Name, err)
		}
	}
	for _, n := range todo {
		if err := n.record(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// replicatedAlter reports an ALTER TABLE of a local (replicated) table.
func replicatedAlter(stmt string) (string, bool) {
	const p = "ALTER TABLE "
	if !strings.HasPrefix(strings.ToUpper(stmt), p) {
		return "", false
	}
	name, _, _ := strings.Cut(strings.TrimSpace(stmt[len(p):]), " ")
	return name, strings.HasSuffix(name, localSuffix)
}

// waitColumns waits (up to a minute) until table on db has every column
// it has on ref: a replicated ALTER reaches the other replicas through
// ZooKeeper, a little later.
func (db *DB) waitColumns(ctx context.Context, ref *DB, table string) error {
	var want uint64
	if err := ref.Conn.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = ? AND table = ?", ref.cfg.Database, table).Scan(&want); err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var got uint64
		if err := db.Conn.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = ? AND table = ?", db.cfg.Database, table).Scan(&got); err != nil {
			return err
		}
		if got >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %s has %d of %d columns a minute after the ALTER on %s", db.cfg.Addr, table, got, want, ref.cfg.Addr)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// syncDistributed gives every replicated t_local its Distributed t and
// adds to t the columns a migration added to t_local since (a Distributed
// table holds no data, so it only needs the columns).
// createsView reports whether stmt creates a plain or materialized view.
func createsView(stmt string) bool {
	u := strings.ToUpper(strings.TrimSpace(stripComments(stmt)))
	return strings.HasPrefix(u, "CREATE VIEW") || strings.HasPrefix(u, "CREATE MATERIALIZED VIEW") ||
		strings.HasPrefix(u, "CREATE OR REPLACE VIEW")
}

func (db *DB) syncDistributed(ctx context.Context) error {
	rows, err := db.Conn.Query(ctx, `SELECT name FROM system.tables
WHERE database = ? AND engine LIKE 'Replicated%' AND endsWith(name, ?)`, db.cfg.Database, localSuffix)
	if err != nil {
		return fmt.Errorf("distributed tables: %w", err)
	}
	var locals []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return err
		}
		locals = append(locals, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, l := range locals {
		name := strings.TrimSuffix(l, localSuffix)
		if err := db.Conn.Exec(ctx, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s AS %s ENGINE = Distributed(%s, %s, %s, rand())",
			name, l, db.cfg.Cluster, db.cfg.Database, l)); err != nil {
			return fmt.Errorf("distributed table %s: %w", name, err)
		}
		missing, err := db.missingColumns(ctx, l, name)
		if err != nil {
			return err
		}
		for _, col := range missing {
			if err := db.Conn.Exec(ctx, "ALTER TABLE "+name+" ADD COLUMN "+col); err != nil {
				return fmt.Errorf("distributed table %s: %w", name, err)
			}
		}
	}
	return nil
}

// missingColumns lists "name type" of the columns of from that to lacks,
// in from's order.
func (db *DB) missingColumns(ctx context.Context, from, to string) ([]string, error) {
	rows, err := db.Conn.Query(ctx, `SELECT name, type FROM system.columns WHERE database = ? AND table = ?
AND name NOT IN (SELECT name FROM system.columns WHERE database = ? AND table = ?)`, db.cfg.Database, from, db.cfg.Database, to)
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", to, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n, t string
		if err := rows.Scan(&n, &t); err != nil {
			return nil, err
		}
		out = append(out, n+" "+t)
	}
	return out, rows.Err()
}
