package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/chserver"
	"github.com/klantreis/journey/internal/procstat"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/warehouse"
)

// Names of the processes the bench starts and measures.
const (
	ProcNATS       = "nats"
	ProcWriter     = "writer"
	ProcProjector  = "projector"
	ProcCollector  = "collector"
	ProcClickHouse = "clickhouse"
	ProcBench      = "bench" // load generator and measurement (this process)
)

// Consumer and bucket names the bench sets for its children, so that it
// can find their backlog and state.
const (
	writerConsumer   = "writer"
	projectorDurable = "journey-projector"
	stateBucket      = "journey_customers"
	collectorToken   = "bench-token-for-this-run"
)

// ErrSystem marks a failure to start or reach the system under test.
var ErrSystem = errors.New("bench: system")

// child is one service process.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// stop sends SIGTERM (the services drain on it) and waits, killing after
// timeout.
func (c *child) stop(timeout time.Duration) error {
	select {
	case <-c.done:
		return c.err
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return nil
	case <-time.After(timeout):
		_ = c.cmd.Process.Kill()
		<-c.done
		return fmt.Errorf("%w: %s did not stop within %s; killed", ErrSystem, c.name, timeout)
	}
}

// system is one instance of journey under test: a NATS server and the
// services as child processes, a fresh ClickHouse database, and the
// bench's own connections for load and observation.
type system struct {
	env          *environment
	dir          string
	natsURL      string
	ch           warehouse.Config
	collectorURL string
	// projectorMetrics is the projector's /metrics: the backlog reads its
	// applied and checkpoint-waiting counts there.
	projectorMetrics string
	procs            map[string]*child
	order            []string // start order; stopped in reverse

	nc *nats.Conn
	js jetstream.JetStream
	db *warehouse.DB
}

// environment is what stays up for the whole bench: ClickHouse and the
// way to start children.
type environment struct {
	opts    Options
	log     *slog.Logger
	chAddr  string
	chPID   int // 0 when ClickHouse is not ours (external) or not found
	workDir string
	runs    int // systems started, for unique names
	seed    uint64
	// chVersion is the server's version, read at the first migration.
	chVersion string
	// ownCPU sums the stopped children's CPU time.
	ownCPU time.Duration
}

// startSystem starts NATS and, if services, the writer, projector and
// collector, each in its own process, against a fresh database.
func (env *environment) startSystem(ctx context.Context, services bool) (_ *system, err error) {
	env.runs++
	name := fmt.Sprintf("run%02d", env.runs)
	sys := &system{env: env, dir: filepath.Join(env.workDir, name), procs: map[string]*child{}}
	defer func() {
		if err != nil {
			sys.stop()
		}
	}()
	if err := os.MkdirAll(sys.dir, 0o755); err != nil {
		return nil, err
	}
	sys.ch = warehouse.Config{Addr: env.chAddr, Database: "bench_" + strconv.FormatInt(time.Now().Unix(), 36) + "_" + name,
		User: "default", DialTimeout: 5 * time.Second, MaxOpenConns: 4}
	if err := sys.startNATS(ctx); err != nil {
		return nil, err
	}
	if err := sys.openDatabase(ctx); err != nil {
		return nil, err
	}
	if !services {
		return sys, nil
	}
	if err := sys.startServices(ctx); err != nil {
		return nil, err
	}
	return sys, nil
}

// startNATS starts the NATS server child on a free port, connects the
// bench to it and creates the streams.
func (sys *system) startNATS(ctx context.Context) error {
	port, err := chserver.FreePort()
	if err != nil {
		return err
	}
	natsEnv := map[string]string{
		"JOURNEY_BENCH_NATS_PORT":      strconv.Itoa(port),
		"JOURNEY_BENCH_NATS_STORE_DIR": filepath.Join(sys.dir, "nats"),
	}
	if sys.env.opts.NATSMemLimit != "" {
		natsEnv["GOMEMLIMIT"] = sys.env.opts.NATSMemLimit
	}
	if err := sys.spawn(ProcNATS, natsEnv); err != nil {
		return err
	}
	if err := sys.waitListening(ctx, ProcNATS, "127.0.0.1:"+strconv.Itoa(port)); err != nil {
		return err
	}
	sys.natsURL = "nats://127.0.0.1:" + strconv.Itoa(port)
	sys.nc, sys.js, err = stream.Connect(stream.Conn{URL: sys.natsURL, Name: "journey-bench", ReconnectWait: 200 * time.Millisecond, RequestTimeout: 10 * time.Second},
		slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	return stream.DefaultTopology().Ensure(ctx, sys.js)
}

// openDatabase connects the bench to the run's database and migrates it.
func (sys *system) openDatabase(ctx context.Context) error {
	var err error
	sys.db, err = warehouse.Open(ctx, sys.ch)
	if err != nil {
		return fmt.Errorf("%w: ClickHouse: %w", ErrSystem, err)
	}
	if _, err := sys.db.Migrate(ctx); err != nil {
		return fmt.Errorf("%w: migrations: %w", ErrSystem, err)
	}
	sys.env.chVersion = sys.db.Features.Version()
	return nil
}

// startServices starts the writer, projector and collector against the
// system's NATS and database, and waits until they serve.
func (sys *system) startServices(ctx context.Context) error {
	common := map[string]string{
		"JOURNEY_NATS_URL":            sys.natsURL,
		"JOURNEY_CLICKHOUSE_ADDR":     sys.ch.Addr,
		"JOURNEY_CLICKHOUSE_DATABASE": sys.ch.Database,
	}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range common {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	// Ops listeners on free ports: several benches (or a `make run`) may
	// share the machine.
	if err := sys.spawn(ProcWriter, with(map[string]string{
		"JOURNEY_WRITER_ADDR":     "127.0.0.1:0",
		"JOURNEY_WRITER_CONSUMER": writerConsumer,
	})); err != nil {
		return err
	}
	paddrFile := filepath.Join(sys.dir, ProcProjector+".addr")
	if err := sys.spawn(ProcProjector, with(map[string]string{
		"JOURNEY_PROJECTOR_ADDR":    "127.0.0.1:0",
		"JOURNEY_BENCH_ADDR_FILE":   paddrFile,
		"JOURNEY_PROJECTOR_DURABLE": projectorDurable,
		"JOURNEY_PROJECTOR_BUCKET":  stateBucket,
	})); err != nil {
		return err
	}
	// No per-token rate limit: the bench is the only client and measures
	// the collector's capacity, not its throttle.
	caddrFile := filepath.Join(sys.dir, ProcCollector+".addr")
	if err := sys.spawn(ProcCollector, with(map[string]string{
		"JOURNEY_COLLECTOR_ADDR":   "127.0.0.1:0",
		"JOURNEY_BENCH_ADDR_FILE":  caddrFile,
		"JOURNEY_COLLECTOR_TOKENS": collectorToken + "=*",
		"JOURNEY_COLLECTOR_RATE":   "0",
	})); err != nil {
		return err
	}
	paddr, err := sys.boundAddr(ctx, ProcProjector, paddrFile)
	if err != nil {
		return err
	}
	sys.projectorMetrics = "http://" + paddr + "/metrics"
	caddr, err := sys.boundAddr(ctx, ProcCollector, caddrFile)
	if err != nil {
		return err
	}
	sys.collectorURL = "http://" + caddr + "/v1/events"
	return sys.waitConsumers(ctx)
}

// boundAddr waits (30 s at most) for the address child name writes to
// path once it listens, and fails as soon as any child exited.
func (sys *system) boundAddr(ctx context.Context, name, path string) (string, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if raw, err := os.ReadFile(path); err == nil {
			return string(raw), nil
		}
		if err := sys.alive(); err != nil {
			return "", err
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%w: %s not listening after 30s", ErrSystem, name)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// spawn starts a child: this program again (Options.Exe) with
// JOURNEY_BENCH_SERVE naming the service, Options.Env and overrides
// (later entries win).
func (sys *system) spawn(name string, env map[string]string) error {
	o := sys.env.opts
	cmd := exec.Command(o.Exe, o.ExeArgs...)
	cmd.Env = append(append([]string(nil), o.Env...), ServeEnv+"="+name)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := os.Create(filepath.Join(sys.dir, name+".log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = out, out
	// Own process group, so a Ctrl-C reaches the bench, which stops the
	// children in order; and they die with the bench if it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("%w: start %s: %w", ErrSystem, name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		out.Close()
		close(c.done)
	}()
	sys.procs[name] = c
	sys.order = append(sys.order, name)
	return nil
}

// alive returns an error naming the first child that exited.
func (sys *system) alive() error {
	for _, name := range sys.order {
		c := sys.procs[name]
		select {
		case <-c.done:
			// The log's end goes into the error: a test's work dir is gone
			// by the time anyone reads the failure.
			path := filepath.Join(sys.dir, name+".log")
			return fmt.Errorf("%w: %s exited (%v); the end of %s:\n%s", ErrSystem, name, c.err, path, logEnd(path, 20))
		default:
		}
	}
	return nil
}

// logEnd is the last n lines of the file at path, or why it could not be read.
func logEnd(path string, n int) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func (sys *system) waitListening(ctx context.Context, name, addr string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if err := sys.alive(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %s not listening on %s after 30s", ErrSystem, name, addr)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitConsumers waits until the writer's consumer and one projector
// consumer per partition exist: until then events would only queue.
func (sys *system) waitConsumers(ctx context.Context) error {
	want := 1 + stream.DefaultTopology().Partitions
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, err := sys.backlog(ctx)
		if err == nil && b.consumers >= want {
			return nil
		}
		if err := sys.alive(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: consumers not created after 60s (have %d of %d; err %v)", ErrSystem, b.consumers, want, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// backlogs is the work the consumers have not finished. The writer's is
// its messages not yet delivered plus delivered but not acknowledged. The
// projector's is the touchpoints stored but not yet applied: the stream's
// last sequence minus the projector's journey_projector_events_applied_total
// (both only grow, so reading them a moment apart cannot make a spike). Its
// unacknowledged messages would not do: in checkpoint mode it acknowledges
// a touchpoint only with the checkpoint after it was applied, so a 30 s
// checkpoint would read as 30 s of backlog. waiting is those applied
// touchpoints (journey_projector_checkpoint_waiting_events), which a drain
// still waits for.
type backlogs struct {
	writer, projector int64
	waiting           int64
	consumers         int
}

func (sys *system) backlog(ctx context.Context) (backlogs, error) {
	var b backlogs
	s, err := sys.js.Stream(ctx, stream.TouchpointStream)
	if err != nil {
		return b, err
	}
	stored := int64(s.CachedInfo().State.LastSeq)
	l := s.ListConsumers(ctx)
	for ci := range l.Info() {
		n := int64(ci.NumPending) + int64(ci.NumAckPending)
		switch {
		case ci.Name == writerConsumer:
			b.writer += n
			b.consumers++
		case strings.HasPrefix(ci.Name, projectorDurable+"-p"):
			b.projector += n
			b.consumers++
		}
	}
	if err := l.Err(); err != nil {
		return b, err
	}
	if sys.projectorMetrics != "" {
		const applied, waiting = "journey_projector_events_applied_total", "journey_projector_checkpoint_waiting_events"
		m, err := scrapeSums(ctx, sys.projectorMetrics, applied, waiting)
		if err != nil {
			return b, err
		}
		b.projector = max(0, stored-int64(m[applied]))
		b.waiting = int64(m[waiting])
	}
	return b, nil
}

// scrapeSums reads a Prometheus text exposition and sums the samples of
// each metric (every label set); 0 for one it does not have.
func scrapeSums(ctx context.Context, url string, metrics ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	sums := make(map[string]float64, len(metrics))
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, metric := range metrics {
			rest, ok := strings.CutPrefix(line, metric)
			if !ok || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
				continue
			}
			f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
			if len(f) == 0 {
				continue
			}
			v, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				return nil, fmt.Errorf("scrape %s: %s: %w", url, line, err)
			}
			sums[metric] += v
		}
	}
	return sums, sc.Err()
}

// counters are cumulative counts that explain where work goes: every
// stream's last sequence (messages stored) and ClickHouse's insert
// queries, inserted rows, rows merged in the background and select
// queries (system.events, server-wide; the bench's own polls are among the
// selects).
type counters struct {
	streams                          map[string]uint64
	inserts, insRow, merged, selects uint64
}

func (sys *system) counters(ctx context.Context) counters {
	c := counters{streams: map[string]uint64{}}
	l := sys.js.ListStreams(ctx)
	for info := range l.Info() {
		c.streams[info.Config.Name] = info.State.LastSeq
	}
	rows, err := sys.db.Conn.Query(ctx, "SELECT event, value FROM system.events WHERE event IN ('InsertQuery', 'InsertedRows', 'MergedRows', 'SelectQuery')")
	if err != nil {
		return c
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var v uint64
		if rows.Scan(&name, &v) != nil {
			continue
		}
		switch name {
		case "InsertQuery":
			c.inserts = v
		case "InsertedRows":
			c.insRow = v
		case "MergedRows":
			c.merged = v
		case "SelectQuery":
			c.selects = v
		}
	}
	return c
}

// since is c minus an earlier reading.
func (c counters) since(b counters) counters {
	sub := func(a, b uint64) uint64 { return a - min(a, b) }
	d := counters{streams: map[string]uint64{}, inserts: sub(c.inserts, b.inserts), insRow: sub(c.insRow, b.insRow),
		merged: sub(c.merged, b.merged), selects: sub(c.selects, b.selects)}
	for name, v := range c.streams {
		d.streams[name] = v - min(b.streams[name], v)
	}
	return d
}

// streamSeq is the touchpoint stream's last sequence.
func (sys *system) streamSeq(ctx context.Context) (uint64, error) {
	s, err := sys.js.Stream(ctx, stream.TouchpointStream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.LastSeq, nil
}

// rows is the number of rows in the run's events table, read from the
// active parts' metadata: a constant-cost query, so polling it every few
// milliseconds does not load the server it measures.
func (sys *system) rows(ctx context.Context) (uint64, error) {
	var n uint64
	err := sys.db.Conn.QueryRow(ctx, "SELECT sum(rows) FROM system.parts WHERE database = ? AND table = 'events' AND active", sys.ch.Database).Scan(&n)
	return n, err
}

// stateVersions returns the highest customer_state version of each of
// the customers that has a row.
func (sys *system) stateVersions(ctx context.Context, ids []string) (map[string]uint64, error) {
	vals := make([]any, len(ids))
	for i, id := range ids {
		vals[i] = id
	}
	rows, err := sys.db.Conn.Query(ctx, "SELECT customer_id, max(version) FROM customer_state WHERE customer_id IN ? GROUP BY customer_id",
		clickhouse.GroupSet{Value: vals})
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]uint64, len(ids))
	for rows.Next() {
		var id string
		var v uint64
		if err := rows.Scan(&id, &v); err != nil {
			return nil, err
		}
		out[id] = v
	}
	return out, rows.Err()
}

// parts is the number of active parts of the run's database and of its
// events table.
func (sys *system) parts(ctx context.Context) (total, events uint64, err error) {
	err = sys.db.Conn.QueryRow(ctx, "SELECT count(), countIf(table = 'events') FROM system.parts WHERE database = ? AND active", sys.ch.Database).Scan(&total, &events)
	return total, events, err
}

// drain waits until both backlogs are zero and every published event is a
// row, or timeout.
func (sys *system) drain(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		b, err := sys.backlog(ctx)
		// Drained includes the checkpoint: nothing left to redeliver.
		if err == nil && b.writer == 0 && b.projector == 0 && b.waiting == 0 {
			seq, err1 := sys.streamSeq(ctx)
			n, err2 := sys.rows(ctx)
			if err1 == nil && err2 == nil && n >= seq {
				return nil
			}
		}
		if err := sys.alive(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: backlog not drained within %s (writer %d, projector %d)", ErrSystem, timeout, b.writer, b.projector)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// pids are the processes to measure: the children, ClickHouse when it is
// ours, and the bench itself.
func (sys *system) pids() map[string]int {
	m := map[string]int{ProcBench: os.Getpid()}
	for name, c := range sys.procs {
		m[name] = c.pid()
	}
	if sys.env.chPID != 0 {
		m[ProcClickHouse] = sys.env.chPID
	}
	return m
}

// usage reads every measured process.
func (sys *system) usage() map[string]procstat.Usage {
	out := map[string]procstat.Usage{}
	for name, pid := range sys.pids() {
		if u, err := procstat.Read(pid); err == nil {
			out[name] = u
		}
	}
	return out
}

// stop stops the children in reverse start order (the services drain
// before NATS goes), closes the connections and drops the database.
func (sys *system) stop() {
	// The children's CPU until now, for the share of the machine the
	// bench had (their shutdown is not counted).
	for name, u := range sys.usage() {
		if name != ProcBench && name != ProcClickHouse {
			sys.env.ownCPU += u.CPU
		}
	}
	if sys.nc != nil {
		sys.nc.Close()
	}
	for i := len(sys.order) - 1; i >= 0; i-- {
		c := sys.procs[sys.order[i]]
		t := time.Now()
		if err := c.stop(45 * time.Second); err != nil {
			sys.env.log.Warn("stopping a service", "service", c.name, "err", err)
		}
		sys.env.log.Debug("stopped", "service", c.name, "took", time.Since(t).Round(10*time.Millisecond))
	}
	if sys.db != nil {
		t := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := sys.db.Conn.Exec(ctx, "DROP DATABASE IF EXISTS "+sys.ch.Database); err != nil {
			sys.env.log.Warn("dropping the run's database", "database", sys.ch.Database, "err", err)
		}
		cancel()
		sys.db.Close()
		sys.env.log.Debug("dropped the run's database", "took", time.Since(t).Round(10*time.Millisecond))
	}
	if !sys.env.opts.KeepData {
		_ = os.RemoveAll(filepath.Join(sys.dir, "nats"))
	}
}
