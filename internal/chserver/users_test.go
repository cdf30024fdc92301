package chserver_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/klantreis/journey/internal/chserver"
	"github.com/klantreis/journey/internal/tlstest"
	"github.com/klantreis/journey/pkg/tlsconfig"
	"github.com/klantreis/journey/pkg/warehouse"
)

func needServer(t *testing.T) {
	t.Helper()
	if _, err := chserver.Find(""); errors.Is(err, chserver.ErrNotInstalled) {
		if os.Getenv("CI") != "" {
			t.Fatal("clickhouse-server is not installed; the test command installs it in CI")
		}
		t.Skip("clickhouse-server is not installed (and CI is unset): nothing to start")
	}
}

// TestRolesAndTLS: a local server with journey's users. The admin
// migrates; the api's readonly user opens the database and reads but
// cannot insert, not even by asking for readonly = 0 in the query; the
// writer's user inserts but may not run DDL or mutations; the default user
// is locked. The same server answers on its TLS port with a certificate
// the test made, and a client that trusts another authority is refused.
func TestRolesAndTLS(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	certs := tlstest.New(t)
	users := []chserver.User{
		{Name: "journey_admin", Password: "adm-pw", Role: chserver.RoleAdmin, Database: "journey"},
		{Name: "journey_writer", Password: "wr-pw", Role: chserver.RoleReadWrite, Database: "journey"},
		{Name: "journey_api", Password: "api-pw", Role: chserver.RoleReadOnly, Database: "journey"},
	}
	s, err := chserver.Start(ctx, chserver.Options{Dir: t.TempDir(), Users: users, TLSCert: certs.ServerCert, TLSKey: certs.ServerKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	cfg := func(user, pw string) warehouse.Config {
		return warehouse.Config{Addr: s.Addr(), Database: "journey", User: user, Password: pw, DialTimeout: 5 * time.Second, MaxOpenConns: 2}
	}

	// Before any migration, the api cannot create the database.
	if db, err := warehouse.Open(ctx, cfg("journey_api", "api-pw")); err == nil {
		db.Close()
		t.Fatal("the readonly user created the database")
	}
	admin, err := warehouse.Open(ctx, cfg("journey_admin", "adm-pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if applied, err := admin.Migrate(ctx); err != nil || len(applied) == 0 {
		t.Fatalf("admin migrates: %d, %v", len(applied), err)
	}

	api, err := warehouse.Open(ctx, cfg("journey_api", "api-pw"))
	if err != nil {
		t.Fatalf("api opens the migrated database: %v", err)
	}
	defer api.Close()
	if applied, err := api.Migrate(ctx); err != nil || len(applied) != 0 {
		t.Fatalf("api's Migrate of an up-to-date schema: %d, %v", len(applied), err)
	}
	var n uint64
	if err := api.Conn.QueryRow(ctx, "SELECT count() FROM events").Scan(&n); err != nil {
		t.Fatalf("api reads: %v", err)
	}
	insert := func(db *warehouse.DB, ctx context.Context) error {
		b, err := db.Conn.PrepareBatch(ctx, "INSERT INTO schema_migrations (version, name, applied_at)")
		if err != nil {
			return err
		}
		if err := b.Append(uint32(9999), "forged", time.Now().UTC()); err != nil {
			return err
		}
		return b.Send()
	}
	if err := insert(api, ctx); err == nil {
		t.Fatal("the api's user inserted")
	} else {
		t.Logf("api insert refused: %v", err)
	}
	lift := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"readonly": 0}))
	if err := insert(api, lift); err == nil {
		t.Fatal("the api's user inserted after asking for readonly = 0")
	}
	if err := api.Conn.Exec(ctx, "ALTER TABLE events DELETE WHERE 1"); err == nil {
		t.Fatal("the api's user ran a mutation")
	}

	writer, err := warehouse.Open(ctx, cfg("journey_writer", "wr-pw"))
	if err != nil {
		t.Fatalf("writer opens: %v", err)
	}
	defer writer.Close()
	if err := insert(writer, ctx); err != nil {
		t.Fatalf("writer inserts: %v", err)
	}
	for _, ddl := range []string{"ALTER TABLE events DELETE WHERE 1", "DROP TABLE events_dead", "TRUNCATE TABLE events",
		"CREATE TABLE x (a UInt8) ENGINE = Memory"} {
		if err := writer.Conn.Exec(ctx, ddl); err == nil {
			t.Fatalf("the writer's user ran %q", ddl)
		}
	}
	if err := admin.Conn.Exec(ctx, "ALTER TABLE schema_migrations DELETE WHERE version = 9999"); err != nil {
		t.Fatalf("admin runs a mutation: %v", err)
	}
	if db, err := warehouse.Open(ctx, cfg("default", "")); err == nil {
		db.Close()
		t.Fatal("the default user logged in without a password")
	}
	// TLS: the secure port with the test's authority.
	tc := cfg("journey_writer", "wr-pw")
	tc.Addr = s.SecureAddr()
	tc.TLS = tlsconfig.Client{CAFile: certs.CA}
	secure, err := warehouse.Open(ctx, tc)
	if err != nil {
		t.Fatalf("TLS to %s: %v", tc.Addr, err)
	}
	defer secure.Close()
	var one uint8
	if err := secure.Conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("TLS round trip: %d, %v", one, err)
	}
	tc.TLS = tlsconfig.Client{CAFile: certs.OtherCA}
	if db, err := warehouse.Open(ctx, tc); err == nil {
		db.Close()
		t.Fatal("a client trusting another authority accepted the server")
	}
	t.Logf("roles: api readonly, writer no DDL, default locked; TLS on %s verified", s.SecureAddr())
}
