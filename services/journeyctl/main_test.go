package journeyctl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/natsserver/natstest"
	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/warehouse"
	"github.com/klantreis/journey/services/journeyctl"
)

func TestMain(m *testing.M) { os.Exit(warehousetest.Main(m)) }

// env is one test's NATS server and ClickHouse database.
type env struct {
	t    *testing.T
	nats string
	ch   warehouse.Config
	db   *warehouse.DB
	js   jetstream.JetStream
	// dup, when set, is the streams' duplicate window for every
	// journeyctl run and projector of the test.
	dup time.Duration
	// user and password log journeyctl in, on a server with users.
	user, password string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, ch: warehousetest.Config(t), nats: natstest.URL(t)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e.open(ctx, stream.Conn{URL: e.nats, ReconnectWait: 100 * time.Millisecond, RequestTimeout: 5 * time.Second})
	return e
}

// open migrates e's ClickHouse database and connects to its NATS server
// as conn with the default topology, both closed when the test ends: the
// stores every test starts from, whichever user it connects as.
func (e *env) open(ctx context.Context, conn stream.Conn) {
	e.t.Helper()
	db, err := warehouse.Open(ctx, e.ch)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		e.t.Fatal(err)
	}
	e.db = db
	nc, js, err := stream.Connect(conn, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(nc.Close)
	if err := stream.DefaultTopology().Ensure(ctx, js); err != nil {
		e.t.Fatal(err)
	}
	e.js = js
}

// envDefaults fills the configuration c (a pointer) with its defaults, as
// from an environment that sets none of its variables.
func envDefaults(tb testing.TB, c any) {
	tb.Helper()
	if err := envconfig.Process("JOURNEY_NOTHING_SET", c); err != nil {
		tb.Fatal(err)
	}
}

// ctlConfig is journeyctl's default configuration on a NATS server and a
// ClickHouse database with the default topology (tests and benchmarks).
func ctlConfig(tb testing.TB, url string, ch warehouse.Config) journeyctl.Config {
	tb.Helper()
	var c journeyctl.Config
	envDefaults(tb, &c)
	c.NATS.URL, c.ClickHouse, c.Stream = url, ch, stream.DefaultTopology()
	return c
}

// childEnv is the environment of a child process on the NATS server at
// url and the ClickHouse database ch (tests and benchmarks).
func childEnv(url string, ch warehouse.Config, extra ...string) []string {
	env := append(os.Environ(), "JOURNEY_NATS_URL="+url, "JOURNEY_CLICKHOUSE_ADDR="+ch.Addr, "JOURNEY_CLICKHOUSE_DATABASE="+ch.Database)
	return append(env, extra...)
}

func (e *env) config() journeyctl.Config {
	c := ctlConfig(e.t, e.nats, e.ch)
	if e.dup > 0 {
		c.Stream.DuplicateWindow = e.dup
	}
	c.NATS.User, c.NATS.Password = e.user, e.password
	return c
}

// run runs journeyctl in-process and returns its exit code, stdout and stderr.
func (e *env) run(args ...string) (int, string, string) {
	e.t.Helper()
	var out, errOut lockedBuffer
	en := &journeyctl.Env{Config: e.config(), Out: &out, Err: &errOut, Log: slog.New(slog.NewTextHandler(&errOut, nil))}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := journeyctl.Run(ctx, append([]string{"--actor", "test:" + e.t.Name()}, args...), en)
	e.t.Logf("journeyctl %s -> %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
	return code, out.String(), errOut.String()
}

// runJSON runs journeyctl like run and decodes its stdout into v; a
// non-zero exit fails the test as "<what> exit <code>".
func (e *env) runJSON(v any, what string, args ...string) {
	e.t.Helper()
	code, out, _ := e.run(args...)
	if code != 0 {
		e.t.Fatalf("%s exit %d", what, code)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) count(q string, args ...any) uint64 {
	e.t.Helper()
	var n uint64
	if err := e.db.Conn.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
	return n
}

func waitFor(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if ok() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", limit, what)
}

func writeFile(t *testing.T, name, body string) string {
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// lockedBuffer is a bytes.Buffer that a NATS callback may still write to
// (through the logger) while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
