package warehouse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/klantreis/journey/schemas"
)

// Migration is one DDL file of schemas/clickhouse, rendered for a server.
type Migration struct {
	Version int
	Name    string
	SQL     []string // statements, in order
}

type tmplVars struct {
	Time string // DateTime64(3, 'UTC') or DateTime('UTC')
	LC   string // LowCardinality(String) or String
	// Modern is true on servers with DateTime64 (>= 20.1), for DDL that has
	// no equivalent on 18.16.
	Modern bool
}

// Migrations renders the embedded migrations for the given features.
// Files are named NNNN_name.sql and hold one or more statements separated
// by a line with a single ";". They are applied in version order.
func Migrations(f Features) ([]Migration, error) { return MigrationsFor(f, Layout{}) }

// MigrationsFor renders the migrations for the given features and table
// layout (see [Layout] for the template functions table and engine).
func MigrationsFor(f Features, l Layout) ([]Migration, error) {
	vars := tmplVars{Time: "DateTime('UTC')", LC: "String", Modern: f.DateTime64}
	if f.DateTime64 {
		vars.Time = "DateTime64(3, 'UTC')"
	}
	if f.LowCardinality {
		vars.LC = "LowCardinality(String)"
	}
	entries, err := fs.ReadDir(schemas.ClickHouse, "clickhouse")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(name, ".sql") {
			return nil, fmt.Errorf("warehouse: migration %q is not named NNNN_name.sql", name)
		}
		raw, err := fs.ReadFile(schemas.ClickHouse, "clickhouse/"+name)
		if err != nil {
			return nil, err
		}
		t, err := template.New(name).Option("missingkey=error").Funcs(l.funcs()).Parse(string(raw))
		if err != nil {
			return nil, fmt.Errorf("warehouse: migration %s: %w", name, err)
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, vars); err != nil {
			return nil, fmt.Errorf("warehouse: migration %s: %w", name, err)
		}
		out = append(out, Migration{Version: v, Name: strings.TrimSuffix(name, ".sql"), SQL: splitStatements(buf.String())})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("warehouse: two migrations have version %d", out[i].Version)
		}
	}
	return out, nil
}

// goSteps are the parts of a migration that SQL cannot do on every
// server, run after its statements and before it is recorded. Like the
// statements they must be safe to run twice.
var goSteps = map[int]func(context.Context, *DB) error{
	12: backfillIdentities,
}

// codeIllegalColumn is ClickHouse's ILLEGAL_COLUMN, which ADD COLUMN
// returns for a column that exists.
const codeIllegalColumn = 44

// columnExists reports an ADD COLUMN whose column is there already: 18.16
// has no ADD COLUMN IF NOT EXISTS, so that is how such a statement is
// idempotent (one column per statement).
func columnExists(stmt string, err error) bool {
	var ex *clickhouse.Exception
	return strings.Contains(strings.ToUpper(stmt), "ADD COLUMN") && errors.As(err, &ex) &&
		ex.Code == codeIllegalColumn && strings.Contains(ex.Message, "already exists")
}

func splitStatements(sql string) []string {
	var stmts []string
	var cur strings.Builder
	flush := func() {
		s := strings.TrimSpace(stripComments(cur.String()))
		if s != "" {
			stmts = append(stmts, s)
		}
		cur.Reset()
	}
	for _, line := range strings.Split(sql, "\n") {
		if strings.TrimSpace(line) == ";" {
			flush()
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	flush()
	return stmts
}

func stripComments(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// Migrate applies the migrations not yet recorded in schema_migrations.
// Every migration must be idempotent (CREATE … IF NOT EXISTS): ClickHouse
// has no transactions or locks, so two services starting at once may both
// apply one, and both record it; that is harmless by construction, and the
// record is read with DISTINCT.
//
// When every migration is applied it only reads, so that services whose
// ClickHouse user may not run DDL (writer, projector, api) start once an
// admin migrated; when some are pending, such a user gets the server's
// refusal, wrapped with what to do.
//
// With Config.Cluster it migrates every node of Addr (see [Layout]).
func (db *DB) Migrate(ctx context.Context) ([]Migration, error) {
	if db.cfg.Cluster != "" {
		return db.migrateCluster(ctx)
	}
	if pending, err := db.pendingMigrations(ctx); err == nil && pending == 0 {
		return nil, nil
	}
	done, err := db.migrate(ctx)
	if denied(err) {
		return done, fmt.Errorf("%w (migrations are pending and user %s may not apply them: an admin user must, e.g. the local stack's journey_admin; see docs/security.md)", err, db.cfg.User)
	}
	return done, err
}

// denied reports a server's refusal for lack of rights: 164 READONLY,
// 392 QUERY_IS_PROHIBITED (allow_ddl = 0, 18.16), 497 ACCESS_DENIED (GRANTs).
func denied(err error) bool {
	var ex *clickhouse.Exception
	return errors.As(err, &ex) && (ex.Code == 164 || ex.Code == 392 || ex.Code == 497)
}

// pendingMigrations counts the migrations schema_migrations does not
// record; an error means it could not tell (no table yet, say).
func (db *DB) pendingMigrations(ctx context.Context) (int, error) {
	all, err := MigrationsFor(db.Features, db.layout())
	if err != nil {
		return 0, err
	}
	var tables uint64
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = 'schema_migrations'", db.cfg.Database).Scan(&tables); err != nil {
		return 0, err
	}
	if tables == 0 {
		return len(all), nil
	}
	applied, err := db.appliedMigrations(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range all {
		if !applied[m.Version] {
			n++
		}
	}
	return n, nil
}

func (db *DB) appliedMigrations(ctx context.Context) (map[int]bool, error) {
	applied := map[int]bool{}
	rows, err := db.Conn.Query(ctx, "SELECT DISTINCT version FROM schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("warehouse: read schema_migrations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		applied[int(v)] = true
	}
	return applied, rows.Err()
}

func (db *DB) migrate(ctx context.Context) ([]Migration, error) {
	if err := db.Conn.Exec(ctx, createSchemaMigrations); err != nil {
		return nil, fmt.Errorf("warehouse: create schema_migrations: %w", err)
	}
	all, err := MigrationsFor(db.Features, db.layout())
	if err != nil {
		return nil, err
	}
	applied, err := db.appliedMigrations(ctx)
	if err != nil {
		return nil, err
	}
	var done []Migration
	for _, m := range all {
		if applied[m.Version] {
			continue
		}
		for i, stmt := range m.SQL {
			if err := db.Conn.Exec(ctx, stmt); err != nil && !columnExists(stmt, err) {
				return done, fmt.Errorf("warehouse: migration %s statement %d: %w", m.Name, i+1, err)
			}
		}
		if step := goSteps[m.Version]; step != nil {
			if err := step(ctx, db); err != nil {
				return done, fmt.Errorf("warehouse: migration %s: %w", m.Name, err)
			}
		}
		if err := db.record(ctx, m); err != nil {
			return done, err
		}
		done = append(done, m)
	}
	return done, nil
}

func (db *DB) record(ctx context.Context, m Migration) error {
	// Through a batch: ClickHouse 18.16 does not answer an INSERT …
	// VALUES sent as a plain query over the native protocol.
	b, err := db.Conn.PrepareBatch(ctx, "INSERT INTO schema_migrations (version, name, applied_at)")
	if err == nil {
		if err = b.Append(uint32(m.Version), m.Name, time.Now().UTC()); err == nil {
			err = b.Send()
		} else {
			_ = b.Abort()
		}
	}
	if err != nil {
		return fmt.Errorf("warehouse: record migration %s: %w", m.Name, err)
	}
	return nil
}

const createSchemaMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version UInt32, name String, applied_at DateTime('UTC')
) ENGINE = MergeTree ORDER BY version`
