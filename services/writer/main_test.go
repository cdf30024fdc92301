package writer_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/natsserver/natsproc"
	"github.com/klantreis/journey/internal/natsserver/natstest"
	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
	"github.com/klantreis/journey/services/writer"
)

// childEnv makes the test binary run as a writer process (the crash tests
// need a process they can kill). The child reads its config like
// cmd/journey-writer does.
const childEnv = "JOURNEY_WRITER_TEST_CHILD"

// crashAtEnv and crashBatchEnv arm the child's crash hook
// (writer.SetCrash): before_insert, mid_insert or after_insert of the
// given batch. The production writer reads no such variable.
const (
	crashAtEnv    = "JOURNEY_WRITER_TEST_CRASH_AT"
	crashBatchEnv = "JOURNEY_WRITER_TEST_CRASH_BATCH"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(runChild())
	}
	os.Exit(warehousetest.Main(m))
}

func runChild() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var cfg writer.Config
	if err := envconfig.Process("JOURNEY", &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if point := os.Getenv(crashAtEnv); point != "" {
		batch, err := strconv.Atoi(os.Getenv(crashBatchEnv))
		if err == nil {
			err = writer.SetCrash(&cfg, point, batch)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, crashAtEnv, err)
			return 1
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := writer.Run(ctx, cfg, log); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// env is one test's NATS streams and ClickHouse database.
type env struct {
	t    *testing.T
	nc   *nats.Conn
	js   jetstream.JetStream
	db   *warehouse.DB
	ch   warehouse.Config
	nats string
}

func newEnv(t *testing.T, ch warehouse.Config, natsAddr string) *env {
	t.Helper()
	nc, err := nats.Connect(natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := stream.DefaultTopology().Ensure(ctx, js); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return &env{t: t, nc: nc, js: js, ch: ch, nats: natsAddr}
}

// sharedEnv uses a NATS server of the test's own and the package's
// ClickHouse.
func sharedEnv(t *testing.T) *env {
	e := newEnv(t, warehousetest.Config(t), natstest.URL(t))
	e.openDB()
	return e
}

func (e *env) openDB() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := warehouse.Open(ctx, e.ch)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := db.Migrate(ctx); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { db.Close() })
	e.db = db
}

func (e *env) config(extra map[string]string) writer.Config {
	var cfg writer.Config
	if err := envconfig.Process("JOURNEY_NOTHING_SET", &cfg); err != nil {
		e.t.Fatal(err)
	}
	cfg.NATS.URL = e.nats
	cfg.ClickHouse = e.ch
	cfg.Stream = stream.DefaultTopology()
	cfg.Writer.Addr = "127.0.0.1:0"
	cfg.Writer.AckWait = 8 * time.Second
	cfg.Writer.InsertTimeout = 3 * time.Second
	cfg.Writer.MaxBackoff = time.Second
	cfg.Writer.LagInterval = time.Second
	return cfg
}

// inProc runs a writer in this process until the test ends; it returns
// the ops base URL.
func (e *env) inProc(cfg writer.Config) string {
	e.t.Helper()
	ready := make(chan net.Addr, 1)
	cfg.OpsReady = ready
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logPath := filepath.Join(e.t.TempDir(), "writer.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		e.t.Fatal(err)
	}
	go func() { done <- writer.Run(ctx, cfg, slog.New(slog.NewTextHandler(logFile, nil))) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("writer.Run: %v", err)
		}
		logFile.Close()
		if e.t.Failed() {
			b, _ := os.ReadFile(logPath)
			e.t.Logf("writer log:\n%s", tail(b, 6000))
		}
	})
	select {
	case a := <-ready:
		return "http://" + a.String()
	case err := <-done:
		e.t.Fatalf("writer.Run returned early: %v", err)
	case <-time.After(10 * time.Second):
		e.t.Fatal("ops listener not up")
	}
	return ""
}

// proc is a writer running as a child process.
type proc struct {
	cmd  *exec.Cmd
	ops  string
	done chan struct{}
	err  error
	log  string
}

func (e *env) startProc(name string, vars map[string]string) *proc {
	e.t.Helper()
	port := freePort(e.t)
	logPath := filepath.Join(e.t.TempDir(), name+".log")
	out, err := os.Create(logPath)
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1",
		"JOURNEY_NATS_URL="+e.nats,
		"JOURNEY_CLICKHOUSE_ADDR="+e.ch.Addr,
		"JOURNEY_CLICKHOUSE_DATABASE="+e.ch.Database,
		"JOURNEY_WRITER_ADDR=127.0.0.1:"+strconv.Itoa(port),
		"JOURNEY_WRITER_ACK_WAIT=8s",
		"JOURNEY_WRITER_INSERT_TIMEOUT=3s",
		"JOURNEY_WRITER_MAX_BACKOFF=1s",
		"JOURNEY_WRITER_LAG_INTERVAL=1s",
	)
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	p := &proc{cmd: cmd, ops: "http://127.0.0.1:" + strconv.Itoa(port), done: make(chan struct{}), log: logPath}
	go func() {
		p.err = cmd.Wait()
		out.Close()
		close(p.done)
	}()
	e.t.Cleanup(func() {
		p.stop()
		if e.t.Failed() {
			b, _ := os.ReadFile(logPath)
			e.t.Logf("%s log:\n%s", name, tail(b, 4000))
		}
	})
	return p
}

func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(40 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// killedBySIGKILL waits for the process to end and reports whether the
// crash hook killed it.
func (p *proc) killedBySIGKILL(timeout time.Duration) bool {
	select {
	case <-p.done:
	case <-time.After(timeout):
		return false
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
			return ws.Signaled() && ws.Signal() == syscall.SIGKILL
		}
	}
	return false
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// freePort is a loopback port that was free a moment ago.
func freePort(t *testing.T) int { return natsproc.FreePort(t) }

// gen makes deterministic, varied touchpoints.
func gen(t testing.TB, i int, at time.Time) touchpoint.Event {
	t.Helper()
	cust := fmt.Sprintf("cust-%d", i%997)
	common := touchpoint.Common{AccountID: fmt.Sprintf("acc-%d", i%31), ContactID: fmt.Sprintf("c-%d", i%61), DMURole: []string{"buyer", "user", "influencer"}[i%3]}
	var p touchpoint.Typed
	switch i % 5 {
	case 0:
		common.Channel = "web"
		p = touchpoint.Visit{Common: common, URL: "https://shop.example/p/" + strconv.Itoa(i), Campaign: "spring"}
	case 1:
		p = touchpoint.Quote{Common: common, QuoteID: "Q" + strconv.Itoa(i), Status: "sent", Amount: touchpoint.Amount{Cents: int64(i) * 7}, Currency: "EUR"}
	case 2:
		p = touchpoint.Order{Common: common, OrderID: "O" + strconv.Itoa(i), Status: "placed", Amount: touchpoint.Amount{Cents: int64(i)}, Currency: "USD", Items: int64(1 + i%4)}
	case 3:
		p = touchpoint.Complaint{Common: common, ComplaintID: "C" + strconv.Itoa(i), Status: "opened", Category: "billing", Severity: "low"}
	default:
		p = touchpoint.Survey{Common: common, SurveyID: "S" + strconv.Itoa(i), Score: int64(i % 11), Comment: "ok"}
	}
	e, err := touchpoint.New("test-shop", "ev-"+strconv.Itoa(i), cust, at.Add(time.Duration(i)*time.Millisecond), p)
	if err != nil {
		t.Fatal(err)
	}
	if i%7 == 0 {
		e.Extensions = map[string]string{"traceparent": "00-" + strconv.Itoa(i), "region": "nl"}
	}
	return e
}

// publish sends msgs with async publishes and waits for every ack; it
// returns how many JetStream stored (not reported as duplicates).
func (e *env) publish(msgs []*nats.Msg) int {
	e.t.Helper()
	stored := 0
	const window = 4000
	for start := 0; start < len(msgs); start += window {
		var futs []jetstream.PubAckFuture
		for _, m := range msgs[start:min(start+window, len(msgs))] {
			f, err := e.js.PublishMsgAsync(m)
			if err != nil {
				e.t.Fatal(err)
			}
			futs = append(futs, f)
		}
		for _, f := range futs {
			select {
			case ack := <-f.Ok():
				if !ack.Duplicate {
					stored++
				}
			case err := <-f.Err():
				e.t.Fatal(err)
			case <-time.After(30 * time.Second):
				e.t.Fatal("publish ack timeout")
			}
		}
	}
	return stored
}

// genMsgs is gen's events from..from+n-1 at at, as fact messages.
func genMsgs(t testing.TB, from, n int, at time.Time) []*nats.Msg {
	msgs := make([]*nats.Msg, n)
	for i := range msgs {
		ev := gen(t, from+i, at)
		msgs[i] = factMsg(t, &ev)
	}
	return msgs
}

func factMsg(t testing.TB, ev *touchpoint.Event) *nats.Msg {
	m, err := stream.NewFactMsg(ev)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (e *env) count(query string, args ...any) uint64 {
	e.t.Helper()
	var n uint64
	if err := e.db.Conn.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// drained reports the consumer has nothing pending or unacked.
func (e *env) drained(consumer string) bool {
	c, err := e.js.Consumer(context.Background(), stream.TouchpointStream, consumer)
	if err != nil {
		return false
	}
	info, err := c.Info(context.Background())
	return err == nil && info.NumPending == 0 && info.NumAckPending == 0
}

// assertExactlyOnce checks the events table holds want rows, one per (source, id), without FINAL.
func (e *env) assertExactlyOnce(want int) {
	e.t.Helper()
	n := e.count("SELECT count() FROM events")
	uniq := e.count("SELECT uniqExact(source, id) FROM events")
	seqs := e.count("SELECT uniqExact(stream_seq) FROM events")
	if n != uint64(want) || uniq != n || seqs != n {
		e.t.Fatalf("events: count %d, unique (source,id) %d, unique stream_seq %d; want %d of each", n, uniq, seqs, want)
	}
}

var metricLine = regexp.MustCompile(`(?m)^([a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$`)

// metric reads one sample from a /metrics page (0 if absent).
func metric(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, m := range metricLine.FindAllStringSubmatch(string(b), -1) {
		if m[1] == name {
			v, _ := strconv.ParseFloat(m[2], 64)
			return v
		}
	}
	return 0
}

// logMetrics logs the writer's own counters, to explain a slow or failed run.
func logMetrics(t *testing.T, base string) {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Log(err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "journey_writer_") && !strings.Contains(l, "_bucket") {
			lines = append(lines, l)
		}
	}
	t.Logf("writer metrics:\n%s", strings.Join(lines, "\n"))
}

func status(url string) int {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

var _ = sync.Mutex{}
