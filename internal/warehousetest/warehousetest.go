// Package warehousetest gives tests a real ClickHouse: the server named by
// JOURNEY_TEST_CLICKHOUSE_ADDR (make test starts one and sets it), or else a
// project-local clickhouse-server started once per test binary, and a fresh,
// migrated database per test that is dropped when the test ends.
//
// Without a server, tests skip with the reason, except under CI (CI set),
// where a missing ClickHouse is a failure: CI must never pass by skipping.
package warehousetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/chserver"
	"github.com/klantreis/journey/pkg/warehouse"
)

// EnvAddr names the variable that points tests at a running server.
const EnvAddr = "JOURNEY_TEST_CLICKHOUSE_ADDR"

var (
	mu      sync.Mutex
	addr    string
	why     string
	started *chserver.Server
	tmpDir  string
)

// Main wraps testing.M.Run for packages that use ClickHouse: it stops the
// server it may have started. Use as os.Exit(warehousetest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	mu.Lock()
	defer mu.Unlock()
	if started != nil {
		started.Stop()
		os.RemoveAll(tmpDir)
	}
	return code
}

// Addr returns the address of a test server, starting one if needed. It
// skips the test when none can be had outside CI, and fails it in CI.
func Addr(t testing.TB) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if addr == "" && why == "" {
		addr, why = find()
	}
	if addr == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("ClickHouse is required in CI: %s", why)
		}
		t.Skipf("skipping: no ClickHouse for this test (%s); run `make test`, which installs and starts one, or set %s", why, EnvAddr)
	}
	return addr
}

func find() (string, string) {
	if a := os.Getenv(EnvAddr); a != "" {
		return a, ""
	}
	if _, err := chserver.Find(""); err != nil {
		return "", "clickhouse-server is not installed and " + EnvAddr + " is not set"
	}
	dir, err := os.MkdirTemp("", "journey-ch-")
	if err != nil {
		return "", err.Error()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s, err := chserver.Start(ctx, chserver.Options{Dir: dir})
	if err != nil {
		os.RemoveAll(dir)
		return "", "starting a local clickhouse-server failed: " + err.Error()
	}
	started, tmpDir = s, dir
	return s.Addr(), ""
}

// Config returns a warehouse config for a fresh database on the test
// server; the database is dropped when the test ends.
func Config(t testing.TB) warehouse.Config {
	t.Helper()
	a := Addr(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	cfg := warehouse.Config{Addr: a, Database: "t_" + hex.EncodeToString(b[:]), User: "default", DialTimeout: 5 * time.Second, MaxOpenConns: 4}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db, err := warehouse.Open(ctx, warehouse.Config{Addr: a, Database: "default", DialTimeout: 5 * time.Second})
		if err != nil {
			return
		}
		defer db.Close()
		_ = db.Conn.Exec(ctx, "DROP DATABASE IF EXISTS "+cfg.Database)
	})
	return cfg
}

// Open returns a migrated, fresh database for one test.
func Open(t testing.TB) *warehouse.DB {
	t.Helper()
	cfg := Config(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	db, err := warehouse.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("warehousetest: open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatalf("warehousetest: migrate: %v", err)
	}
	return db
}

// Must fails the test on err; a small aid for table code in tests.
func Must(t testing.TB, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatal(fmt.Errorf("%s: %w", what, err))
	}
}
