package stack_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/chserver"
	"github.com/klantreis/journey/internal/tlstest"
	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/tlsconfig"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
	"github.com/klantreis/journey/services/stack"
)

func TestMain(m *testing.M) { os.Exit(warehousetest.Main(m)) }

// defaults fills a config with its envconfig defaults only: a prefix no
// environment sets, so a developer's JOURNEY_* variables do not leak in.
func defaults(t *testing.T, cfg any) {
	t.Helper()
	if err := envconfig.Process("JOURNEYSTACKTEST", cfg); err != nil {
		t.Fatal(err)
	}
}

// testConfig is a stack on free ports over a fresh ClickHouse database,
// with a simulator that backfills a little and stops.
func testConfig(t *testing.T, dataDir string, limit int64) stack.Config {
	var cfg stack.Config
	defaults(t, &cfg)
	defaults(t, &cfg.Collector)
	defaults(t, &cfg.API)
	defaults(t, &cfg.Projector)
	cfg.Projector.Projector.Addr = "127.0.0.1:0"
	defaults(t, &cfg.Writer)
	cfg.Writer.Writer.Addr = "127.0.0.1:0"
	defaults(t, &cfg.Simulator)
	cfg.Stack.DataDir = dataDir
	cfg.Stack.NATSPort = 0
	cfg.Stack.FirstBackfill = 60 * 24 * time.Hour
	cfg.Stack.ShutdownTimeout = 30 * time.Second
	cfg.ExternalClickHouse = true
	cfg.ClickHouse = warehousetest.Config(t)
	cfg.Collector.Collector.Addr = "127.0.0.1:0"
	cfg.API.API.Addr = "127.0.0.1:0"
	cfg.Simulator.Simulator.Customers = 100
	cfg.Simulator.Simulator.Limit = limit
	cfg.Simulator.Simulator.Seed = 99
	return cfg
}

type runningStack struct {
	ep     stack.Endpoints
	banner string
	stop   func() error
}

func start(t *testing.T, cfg stack.Config) runningStack {
	t.Helper()
	ready := make(chan stack.Endpoints, 1)
	cfg.Ready = ready
	var banner bytes.Buffer
	cfg.Banner = &banner
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logOut := io.Discard
	if os.Getenv("STACK_TEST_LOG") != "" {
		logOut = os.Stderr
	}
	go func() { done <- stack.Run(ctx, cfg, slog.New(slog.NewTextHandler(logOut, nil))) }()
	select {
	case ep := <-ready:
		for _, want := range []string{ep.CollectorURL, ep.APIURL, ep.NATSURL, ep.ClickHouseAddr, "clickhouse-client"} {
			if !strings.Contains(banner.String(), want) {
				t.Errorf("banner does not say %q:\n%s", want, banner.String())
			}
		}
		if pw, err := os.ReadFile(ep.NATSAdminPasswordFile); err != nil || len(bytes.TrimSpace(pw)) < 16 {
			t.Errorf("NATS admin password file %s: %v", ep.NATSAdminPasswordFile, err)
		} else if strings.Contains(banner.String(), string(bytes.TrimSpace(pw))) {
			t.Errorf("the banner prints the NATS admin password")
		}
		stopped := false
		stop := func() error {
			if stopped {
				return nil
			}
			stopped = true
			cancel()
			select {
			case err := <-done:
				return err
			case <-time.After(60 * time.Second):
				return fmt.Errorf("stack did not stop within 60s")
			}
		}
		t.Cleanup(func() { stop() })
		return runningStack{ep: ep, banner: banner.String(), stop: stop}
	case err := <-done:
		cancel()
		t.Fatalf("stack did not come up: %v", err)
	case <-time.After(120 * time.Second):
		cancel()
		t.Fatal("stack not ready within 120s")
	}
	return runningStack{}
}

// streamMsgs reads the stream as the NATS admin: the stack's server lets
// no anonymous client in.
func streamMsgs(t *testing.T, ep stack.Endpoints) (uint64, jetstream.JetStream, func()) {
	t.Helper()
	pw, err := os.ReadFile(ep.NATSAdminPasswordFile)
	if err != nil {
		t.Fatal(err)
	}
	nc, js, err := stream.Connect(stream.Conn{URL: ep.NATSURL, User: stream.UserAdmin, Password: strings.TrimSpace(string(pw)),
		ReconnectWait: 100 * time.Millisecond, RequestTimeout: 5 * time.Second}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	info, err := js.Stream(context.Background(), stream.TouchpointStream)
	if err != nil {
		nc.Close()
		t.Fatal(err)
	}
	return info.CachedInfo().State.Msgs, js, nc.Close
}

func waitMsgs(t *testing.T, ep stack.Endpoints, want uint64) uint64 {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		n, _, closeNC := streamMsgs(t, ep)
		closeNC()
		if n >= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestStackRunsAndRestarts: the stack comes up, the simulator's backfill
// lands in the stream, the collector takes an event with the run's token,
// Ctrl-C (cancel) stops it cleanly, and a second start keeps the data and
// does not backfill again; the simulator then sends through the collector.
func TestStackRunsAndRestarts(t *testing.T) {
	dataDir := t.TempDir()
	cfg := testConfig(t, dataDir, 500)
	s := start(t, cfg)
	// NATS enforces the users of deploy/nats: no anonymous client.
	if nc, err := nats.Connect(s.ep.NATSURL); err == nil {
		nc.Close()
		t.Fatal("the stack's NATS let an anonymous client in")
	}
	if got := waitMsgs(t, s.ep, 500); got != 500 {
		t.Fatalf("stream holds %d events after the simulator's 500", got)
	}

	// The collector is wired to the same stream, with the printed token.
	e, err := touchpoint.New("test/stack", "stack-1", "cust-stack", time.Now().Add(-time.Minute), touchpoint.Visit{Common: touchpoint.Common{Channel: "web"}})
	if err != nil {
		t.Fatal(err)
	}
	body := append(append([]byte{'['}, e.MarshalStructured()...), ']')
	if code, msg := authed(t, http.MethodPost, s.ep.CollectorURL, s.ep.CollectorToken, "application/cloudevents-batch+json", body); code != http.StatusAccepted {
		t.Fatalf("collector answered %d: %s", code, msg)
	}
	if got := waitMsgs(t, s.ep, 501); got != 501 {
		t.Fatalf("stream holds %d events after the collector's one, want 501", got)
	}
	// The writer stores every event in ClickHouse.
	if got := waitRows(t, cfg, "events", 501); got != 501 {
		t.Fatalf("ClickHouse events holds %d rows, want 501", got)
	}

	// The projector derives a state for every customer of the stream.
	if got, want := waitQuery(t, cfg, "SELECT uniqExact(customer_id) FROM customer_state", "SELECT uniqExact(customer_id) FROM events"); got != want {
		t.Fatalf("customer_state holds %d customers, events %d", got, want)
	}

	// The API and the dashboard answer with the run's token, and not
	// without it.
	if s.ep.APIToken == "" || !strings.Contains(s.banner, s.ep.APIToken) {
		t.Fatalf("no API token printed: %q", s.ep.APIToken)
	}
	if resp, err := http.Get(s.ep.APIURL + "v1/metrics/nps"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("API without a token: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	for _, path := range []string{"healthz", "", "v1/metrics/nps"} {
		if code, body := authed(t, http.MethodGet, s.ep.APIURL+path, s.ep.APIToken, "", nil); code != http.StatusOK {
			t.Fatalf("GET %s%s: %d: %s", s.ep.APIURL, path, code, body)
		}
	}
	if err := s.stop(); err != nil {
		t.Fatalf("stack stopped with %v", err)
	}

	// Second start on the same data: the stream is still there, and there
	// is no second backfill (the simulator then runs live at its rate).
	cfg2 := testConfig(t, dataDir, 20)
	cfg2.ClickHouse = cfg.ClickHouse
	cfg2.Simulator.Simulator.Seed = 100
	// This time through the collector: the stack hands the simulator the
	// collector's address and the run's token.
	cfg2.Simulator.Simulator.Sink = "collector"
	cfg2.Simulator.Simulator.Rate = 200
	s2 := start(t, cfg2)
	got := waitMsgs(t, s2.ep, 521)
	if got != 521 {
		t.Fatalf("after a restart the stream holds %d events, want 501 kept + 20 new", got)
	}
	_, js, closeNC := streamMsgs(t, s2.ep)
	defer closeNC()
	m, err := js.Stream(context.Background(), stream.TouchpointStream)
	if err != nil {
		t.Fatal(err)
	}
	last, err := m.GetLastMsgForSubject(context.Background(), stream.AllFactsFilter)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := stream.DecodeMsg(last.Header, last.Data)
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(ev.Time) > time.Minute {
		t.Fatalf("after a restart the simulator wrote history again (event at %s); want live events", ev.Time)
	}
	if got := waitRows(t, cfg, "events", 521); got != 521 {
		t.Fatalf("after the restart ClickHouse events holds %d rows, want 521", got)
	}
	if err := s2.stop(); err != nil {
		t.Fatalf("stack stopped with %v", err)
	}
}

// waitRows polls count() of a table until it reaches want or 60s pass.
func waitRows(t *testing.T, cfg stack.Config, table string, want uint64) uint64 {
	t.Helper()
	var n uint64
	pollClickHouse(t, cfg, func(q func(string) uint64) bool {
		n = q("SELECT count() FROM " + table)
		return n >= want
	})
	return n
}

// waitQuery polls until query returns what wantQuery returns (both one
// UInt64), or 60s pass; it returns both.
func waitQuery(t *testing.T, cfg stack.Config, query, wantQuery string) (uint64, uint64) {
	t.Helper()
	var got, want uint64
	pollClickHouse(t, cfg, func(q func(string) uint64) bool {
		got, want = q(query), q(wantQuery)
		return got == want && want > 0
	})
	return got, want
}

// pollClickHouse calls done every 200ms until it returns true or 60s
// pass; its q runs a query that returns one UInt64 (an error fails the
// test).
func pollClickHouse(t *testing.T, cfg stack.Config, done func(q func(query string) uint64) bool) {
	t.Helper()
	ctx := context.Background()
	db, err := warehouse.Open(ctx, cfg.ClickHouse)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q := func(query string) uint64 {
		var n uint64
		if err := db.Conn.QueryRow(ctx, query).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for deadline := time.Now().Add(60 * time.Second); !done(q) && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
	}
}

// TestStackLocalClickHouseRoles: with its own ClickHouse the stack gives
// every service its own user (writer and projector without DDL, the api
// readonly) and the whole pipeline still works; the admin's password is
// in a file, not in the banner.
func TestStackLocalClickHouseRoles(t *testing.T) {
	if _, err := chserver.Find(""); errors.Is(err, chserver.ErrNotInstalled) {
		if os.Getenv("CI") != "" {
			t.Fatal("clickhouse-server is not installed; the test command installs it in CI")
		}
		t.Skip("clickhouse-server is not installed (and CI is unset): the stack cannot start its own")
	}
	cfg := testConfig(t, t.TempDir(), 200)
	cfg.ExternalClickHouse = false
	cfg.Stack.ClickHousePort = 0
	cfg.ClickHouse = warehouse.Config{Database: "journey", DialTimeout: 5 * time.Second, MaxOpenConns: 4}
	s := start(t, cfg)
	pw, err := os.ReadFile(s.ep.ClickHouseAdminPasswordFile)
	if err != nil {
		t.Fatal(err)
	}
	admin := cfg.ClickHouse
	admin.Addr, admin.User, admin.Password = s.ep.ClickHouseAddr, "journey_admin", strings.TrimSpace(string(pw))
	check := stack.Config{ClickHouse: admin}
	if got := waitRows(t, check, "events", 200); got != 200 {
		t.Fatalf("events holds %d rows, want the simulator's 200 (writer as journey_writer)", got)
	}
	if got, want := waitQuery(t, check, "SELECT uniqExact(customer_id) FROM customer_state", "SELECT uniqExact(customer_id) FROM events"); got != want {
		t.Fatalf("customer_state holds %d customers, events %d (projector as journey_projector)", got, want)
	}
	if code, body := authed(t, http.MethodGet, s.ep.APIURL+"v1/metrics/nps", s.ep.APIToken, "", nil); code != http.StatusOK {
		t.Fatalf("api as journey_api: %d: %s", code, body)
	}
	anon := admin
	anon.User, anon.Password = "default", ""
	if db, err := warehouse.Open(context.Background(), anon); err == nil {
		db.Close()
		t.Fatal("the local ClickHouse let the default user in without a password")
	}
	if err := s.stop(); err != nil {
		t.Fatalf("stack stopped with %v", err)
	}
}

// TestStackNATSOverTLS: with JOURNEY_STACK_NATS_TLS_* the embedded server
// requires TLS, and every service, on its own user and with the test's
// authority, still carries the simulator's events into ClickHouse.
func TestStackNATSOverTLS(t *testing.T) {
	certs := tlstest.New(t)
	cfg := testConfig(t, t.TempDir(), 100)
	cfg.Stack.NATSTLS = tlsconfig.Server{CertFile: certs.ServerCert, KeyFile: certs.ServerKey}
	ca := tlsconfig.Client{CAFile: certs.CA}
	cfg.Collector.NATS.TLS, cfg.Writer.NATS.TLS, cfg.Projector.NATS.TLS, cfg.Simulator.NATS.TLS = ca, ca, ca, ca
	s := start(t, cfg)
	if got := waitRows(t, cfg, "events", 100); got != 100 {
		t.Fatalf("events holds %d rows over TLS, want 100", got)
	}
	if got, want := waitQuery(t, cfg, "SELECT uniqExact(customer_id) FROM customer_state", "SELECT uniqExact(customer_id) FROM events"); got != want {
		t.Fatalf("customer_state holds %d customers, events %d", got, want)
	}
	pw, err := os.ReadFile(s.ep.NATSAdminPasswordFile)
	if err != nil {
		t.Fatal(err)
	}
	// Without TLS the admin's own credentials do not get in.
	if nc, err := nats.Connect(s.ep.NATSURL, nats.UserInfo(stream.UserAdmin, strings.TrimSpace(string(pw))), nats.Timeout(2*time.Second)); err == nil {
		nc.Close()
		t.Fatal("a plain connection reached the TLS-only server")
	}
	if err := s.stop(); err != nil {
		t.Fatalf("stack stopped with %v", err)
	}
}

// authed sends a request with a bearer token (and a Content-Type, if
// given) and returns the status and the body.
func authed(t *testing.T, method, url, token, contentType string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, msg
}
