package journeyctl_test

import (
	"bytes"
	"context"
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
	db, err := warehouse.Open(ctx, e.ch)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e.db = db
	nc, js, err := stream.Connect(stream.Conn{URL: e.nats, ReconnectWait: 100 * time.Millisecond, RequestTimeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if err := stream.DefaultTopology().Ensure(ctx, js); err != nil {
		t.Fatal(err)
	}
	e.js = js
	return e
}

func (e *env) config() journeyctl.Config {
	var c journeyctl.Config
	if err := envconfig.Process("JOURNEY_NOTHING_SET", &c); err != nil {
		e.t.Fatal(err)
	}
	c.NATS.URL, c.ClickHouse, c.Stream = e.nats, e.ch, stream.DefaultTopology()
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
