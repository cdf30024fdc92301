// Command writer-bench measures the writer against its baselines in one
// run, on one machine, and prints medians of several runs:
//
//	(a) raw JetStream consume: fetch + ack of the pre-filled stream
//	(b) raw clickhouse-go batch insert of the same rows (warehouse.InsertEvents)
//	(c) the writer draining the pre-filled stream, and with a publisher
//	    running at the same time
//	(d) two writer processes draining the pre-filled stream
//	(e) publish -> row visible latency at a fixed rate
//
// It starts an embedded NATS server and, unless JOURNEY_CLICKHOUSE_ADDR is
// set, a local clickhouse-server, both in a temporary directory.
//
//	go run ./bench/cmd/writer-bench -n 200000 -runs 3
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/chserver"
	"github.com/klantreis/journey/internal/natsserver"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
	"github.com/klantreis/journey/services/writer"
)

const childEnv = "JOURNEY_WRITER_BENCH_CHILD"

func main() {
	if err := realMain(); err != nil {
		fmt.Fprintln(os.Stderr, "writer-bench:", err)
		os.Exit(1)
	}
}

type opts struct {
	n, runs, rate, latencySecs int
	batch                      int
	age                        time.Duration
	sweep                      string
	only                       string
	cpuprofile                 string
}

func realMain() error {
	if os.Getenv(childEnv) == "1" {
		return child()
	}
	var o opts
	flag.IntVar(&o.n, "n", 200_000, "events per measurement")
	flag.IntVar(&o.runs, "runs", 3, "runs per measurement (medians are reported)")
	flag.IntVar(&o.rate, "rate", 10_000, "events/s for the latency measurement")
	flag.IntVar(&o.latencySecs, "latency-secs", 10, "duration of the latency measurement")
	flag.IntVar(&o.batch, "batch", 20000, "writer batch size (and raw fetch/insert size)")
	flag.DurationVar(&o.age, "age", 200*time.Millisecond, "writer batch age")
	flag.StringVar(&o.sweep, "sweep", "", "comma-separated batch sizes to compare draining the stream (one run each)")
	flag.StringVar(&o.only, "only", "abcde", "measurements to run")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of each measurement's timed part to this file + .a, .b, .c, .c-pub, .d, .e (the last run's)")
	memprofile := flag.String("memprofile", "", "write a heap profile (allocations of the whole run) to this file at the end")
	flag.Parse()
	if *memprofile != "" {
		defer func() {
			if f, err := os.Create(*memprofile); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "writer-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ns, err := natsserver.Start(natsserver.Options{StoreDir: dir + "/nats"})
	if err != nil {
		return err
	}
	defer ns.Shutdown()
	chAddr := os.Getenv("JOURNEY_CLICKHOUSE_ADDR")
	if chAddr == "" {
		srv, err := chserver.Start(ctx, chserver.Options{Dir: dir + "/ch"})
		if err != nil {
			return err
		}
		defer srv.Stop()
		chAddr = srv.Addr()
	}
	b := &bench{o: o, natsURL: ns.ClientURL(), chAddr: chAddr, meter: newCPUMeter(chAddr)}
	return b.run(ctx)
}

type bench struct {
	o       opts
	natsURL string
	chAddr  string
	nc      *nats.Conn
	js      jetstream.JetStream
	msgs    []*nats.Msg
	dbSeq   int

	meter   *cpuMeter
	key     string // the measurement being timed (profile file suffix)
	t0      cpuSnap
	last    cpuUse // CPU of the last timed part
	profile *os.File
}

// begin marks the start of a measurement's timed part: CPU clocks and,
// with -cpuprofile, a profile of just this part.
func (b *bench) begin() {
	if b.o.cpuprofile != "" {
		if f, err := os.Create(b.o.cpuprofile + "." + b.key); err == nil && pprof.StartCPUProfile(f) == nil {
			b.profile = f
		}
	}
	b.t0 = b.meter.snap()
}

// end marks the end of the timed part.
func (b *bench) end() {
	b.last = b.meter.since(b.t0)
	if b.profile != nil {
		pprof.StopCPUProfile()
		b.profile.Close()
		b.profile = nil
	}
}

func (b *bench) run(ctx context.Context) error {
	var err error
	b.nc, err = nats.Connect(b.natsURL)
	if err != nil {
		return err
	}
	defer b.nc.Close()
	b.js, err = jetstream.New(b.nc, jetstream.WithPublishAsyncMaxPending(8192))
	if err != nil {
		return err
	}
	bytes, err := b.makeMsgs()
	if err != nil {
		return err
	}
	fmt.Printf("writer-bench: %d events (%.0f bytes of data each), %d runs, batch %d, age %s, GOMAXPROCS %d, ClickHouse %s\n",
		b.o.n, float64(bytes)/float64(b.o.n), b.o.runs, b.o.batch, b.o.age, runtime.GOMAXPROCS(0), b.chAddr)

	fmt.Println(b.meter.note)
	res, uses, err := b.measureRuns(ctx)
	if err != nil {
		return err
	}
	b.printSummary(res, uses)
	if b.o.sweep != "" {
		return b.sweepBatches(ctx)
	}
	return nil
}

// makeMsgs builds the events every measurement publishes, a day old, and
// returns their data's total size.
func (b *bench) makeMsgs() (int, error) {
	at := time.Now().Add(-24 * time.Hour)
	b.msgs = make([]*nats.Msg, b.o.n)
	var bytes int
	for i := range b.msgs {
		ev := event(i, at)
		m, err := stream.NewFactMsg(&ev)
		if err != nil {
			return 0, err
		}
		b.msgs[i] = m
		bytes += len(m.Data)
	}
	return bytes, nil
}

// measureRuns runs the measurements -only names, -runs times, and
// returns each one's figures and CPU use by run.
func (b *bench) measureRuns(ctx context.Context) (map[string][]float64, map[string][]cpuUse, error) {
	res := map[string][]float64{}
	uses := map[string][]cpuUse{}
	add := func(k string, v float64) { res[k] = append(res[k], v); fmt.Printf("  %-30s %10.0f\n", k, v) }
	// measure runs one timed measurement; key names it in the CPU table.
	measure := func(key, label string, f func() (float64, error)) error {
		b.key = key
		v, err := f()
		if err != nil {
			return err
		}
		add(label, v)
		uses[key] = append(uses[key], b.last)
		fmt.Printf("  %-30s %s\n", "", b.last)
		return nil
	}
	for r := 1; r <= b.o.runs; r++ {
		fmt.Printf("run %d (load1 %.1f)\n", r, load1())
		pub, err := b.refill(ctx)
		if err != nil {
			return nil, nil, err
		}
		add("publish (events/s)", pub)
		if strings.Contains(b.o.only, "a") {
			if err := measure("a", "a raw consume+ack (msg/s)", func() (float64, error) { return b.rawConsume(ctx) }); err != nil {
				return nil, nil, err
			}
		}
		if strings.Contains(b.o.only, "b") {
			if err := measure("b", "b raw insert (rows/s)", func() (float64, error) { return b.rawInsert(ctx) }); err != nil {
				return nil, nil, err
			}
		}
		if strings.Contains(b.o.only, "c") {
			if err := measure("c", "c writer drain (rows/s)", func() (float64, error) { return b.writerDrain(ctx, b.o.batch, 1) }); err != nil {
				return nil, nil, err
			}
			if err := measure("c-pub", "c writer + publisher (rows/s)", func() (float64, error) { return b.writerLive(ctx) }); err != nil {
				return nil, nil, err
			}
		}
		if strings.Contains(b.o.only, "d") {
			// The children's CPU is not in this process's clock: d's
			// "bench proc" column is only the NATS server's share.
			if err := measure("d", "d two writer procs (rows/s)", func() (float64, error) { return b.writerDrain(ctx, b.o.batch, 2) }); err != nil {
				return nil, nil, err
			}
		}
		if strings.Contains(b.o.only, "e") {
			b.key = "e"
			p50, p99, err := b.latency(ctx)
			if err != nil {
				return nil, nil, err
			}
			add("e latency p50 (ms)", p50)
			add("e latency p99 (ms)", p99)
			uses["e"] = append(uses["e"], b.last)
			fmt.Printf("  %-30s %s\n", "", b.last)
		}
	}
	return res, uses, nil
}

// printSummary prints the medians, the CPU table and how the writer
// compares with its baselines.
func (b *bench) printSummary(res map[string][]float64, uses map[string][]cpuUse) {
	fmt.Printf("\nmedians of %d runs\n", b.o.runs)
	keys := make([]string, 0, len(res))
	for k := range res {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("| %s | %.0f |\n", k, median(res[k]))
	}
	b.printCPU(uses)
	if a, bb, c := median(res["a raw consume+ack (msg/s)"]), median(res["b raw insert (rows/s)"]), median(res["c writer drain (rows/s)"]); a > 0 && bb > 0 {
		serial := 1 / (1/a + 1/bb)
		fmt.Printf("min(a, b) = %.0f; serial bound 1/(1/a + 1/b) = %.0f\n", min(a, bb), serial)
		fmt.Printf("writer drain / min(a, b) = %.2f; / serial bound = %.2f\n", c/min(a, bb), c/serial)
		fmt.Printf("writer+publisher / min(a, b) = %.2f\n", median(res["c writer + publisher (rows/s)"])/min(a, bb))
		// Per-run ratios: the runs' absolute rates swing with the machine's
		// load, ratios within one run less so.
		for r := 0; r < b.o.runs && r < len(res["c writer drain (rows/s)"]); r++ {
			a, bb, c := res["a raw consume+ack (msg/s)"][r], res["b raw insert (rows/s)"][r], res["c writer drain (rows/s)"][r]
			fmt.Printf("  run %d: drain / min(a, b) = %.2f, / serial bound %.0f = %.2f\n", r+1, c/min(a, bb), 1/(1/a+1/bb), c/(1/(1/a+1/bb)))
		}
		if ua, ub := uses["a"], uses["b"]; len(ua) > 0 && len(ub) > 0 {
			perA := median(perEvent(ua, b.o.n, cpuUse.ours))
			perB := median(perEvent(ub, b.o.n, cpuUse.ours))
			cores := float64(runtime.NumCPU())
			fmt.Printf("CPU bound: %d cores / (CPU-s per event of a + of b) = %.0f events/s; writer drain / CPU bound = %.2f\n",
				runtime.NumCPU(), cores/(perA+perB), c/(cores/(perA+perB)))
			// Load-independent form: what one event costs the writer
			// against what consuming it plus inserting it cost alone.
			if uc := uses["c"]; len(uc) > 0 {
				fmt.Printf("CPU per event: writer drain / (a + b) = %.2f\n", median(perEvent(uc, b.o.n, cpuUse.ours))/(perA+perB))
			}
		}
	}
}

// sweepBatches drains the pre-filled stream once per -sweep batch size.
func (b *bench) sweepBatches(ctx context.Context) error {
	fmt.Println("\nbatch size sweep (writer draining the pre-filled stream, one run each)")
	for _, s := range strings.Split(b.o.sweep, ",") {
		size, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		v, err := b.writerDrain(ctx, size, 1)
		if err != nil {
			return err
		}
		fmt.Printf("| %d | %.0f |\n", size, v)
	}
	return nil
}

// perEvent returns f(use) per event of each run.
func perEvent(us []cpuUse, n int, f func(cpuUse) float64) []float64 {
	out := make([]float64, len(us))
	for i, u := range us {
		out[i] = f(u) / float64(n)
	}
	return out
}

// printCPU prints, per measurement, medians of CPU-seconds per 100 000
// events and of cores used (CPU-s / wall-s).
func (b *bench) printCPU(uses map[string][]cpuUse) {
	fmt.Printf("\nCPU, medians (CPU-s per 100k events; cores = CPU-s / wall-s; others = rest of the machine)\n")
	fmt.Println("| measurement | bench proc CPU-s/100k | clickhouse CPU-s/100k | total CPU-s/100k | bench proc cores | clickhouse cores | total cores | others' cores | load1 | bench proc KB allocated/event |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	per100k := func(f func(cpuUse) float64) func(u cpuUse) float64 {
		return func(u cpuUse) float64 { return f(u) / float64(b.o.n) * 1e5 }
	}
	for _, k := range []string{"a", "b", "c", "c-pub", "d", "e"} {
		us := uses[k]
		if len(us) == 0 {
			continue
		}
		col := func(f func(cpuUse) float64) float64 {
			v := make([]float64, len(us))
			for i, u := range us {
				v[i] = f(u)
			}
			return median(v)
		}
		chS, chC := "n/a", "n/a"
		if us[0].ch >= 0 {
			chS = fmt.Sprintf("%.2f", col(per100k(func(u cpuUse) float64 { return u.ch })))
			chC = fmt.Sprintf("%.2f", col(func(u cpuUse) float64 { return u.ch / u.wall }))
		}
		fmt.Printf("| %s | %.2f | %s | %.2f | %.2f | %s | %.2f | %.2f | %.1f | %.2f |\n", k,
			col(per100k(func(u cpuUse) float64 { return u.self })), chS, col(per100k(cpuUse.ours)),
			col(func(u cpuUse) float64 { return u.self / u.wall }), chC, col(func(u cpuUse) float64 { return u.ours() / u.wall }),
			col(func(u cpuUse) float64 { return max(u.machine-u.ours(), 0) / u.wall }), col(func(u cpuUse) float64 { return u.load1 }),
			col(func(u cpuUse) float64 { return float64(u.alloc) / float64(b.o.n) / 1e3 }))
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func event(i int, at time.Time) touchpoint.Event {
	cust := "cust-" + strconv.Itoa(i%20011)
	common := touchpoint.Common{AccountID: "acc-" + strconv.Itoa(i%997), ContactID: "contact-" + strconv.Itoa(i%5003), DMURole: "buyer"}
	var p touchpoint.Typed
	switch i % 5 {
	case 0, 1:
		common.Channel = "web"
		p = touchpoint.Visit{Common: common, URL: "https://shop.example.com/products/" + strconv.Itoa(i%1000), Campaign: "spring-sale", SessionID: "s-" + strconv.Itoa(i/7)}
	case 2:
		p = touchpoint.Quote{Common: common, QuoteID: "Q-" + strconv.Itoa(i), Status: "sent", Amount: touchpoint.Amount{Cents: int64(i%100000) * 3}, Currency: "EUR"}
	case 3:
		p = touchpoint.Order{Common: common, OrderID: "O-" + strconv.Itoa(i), Status: "placed", Amount: touchpoint.Amount{Cents: int64(i % 50000)}, Currency: "EUR", Items: 2}
	default:
		p = touchpoint.Survey{Common: common, SurveyID: "S-" + strconv.Itoa(i), Score: int64(i % 11), Comment: "delivery could be faster"}
	}
	ev, _ := touchpoint.New("bench-shop", "ev-"+strconv.Itoa(i), cust, at.Add(time.Duration(i)*time.Millisecond), p)
	return ev
}

// refill recreates the streams and publishes all events; it returns the
// publish rate.
func (b *bench) refill(ctx context.Context) (float64, error) {
	for _, s := range []string{stream.TouchpointStream, stream.DerivedStream, stream.DeadLetterStream} {
		_ = b.js.DeleteStream(ctx, s)
	}
	if err := stream.DefaultTopology().Ensure(ctx, b.js); err != nil {
		return 0, err
	}
	start := time.Now()
	if err := b.publishAll(ctx, b.msgs, nil); err != nil {
		return 0, err
	}
	return float64(len(b.msgs)) / time.Since(start).Seconds(), nil
}

// publishAll publishes msgs async; pace, if set, is called before each.
func (b *bench) publishAll(ctx context.Context, msgs []*nats.Msg, pace func(i int)) error {
	for i, m := range msgs {
		if pace != nil {
			pace(i)
		}
		// A copy: the NATS client keeps the message until acked.
		if _, err := b.js.PublishMsgAsync(&nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data}, jetstream.WithStallWait(time.Minute)); err != nil {
			return err
		}
	}
	select {
	case <-b.js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(2 * time.Minute):
		return fmt.Errorf("publish acks timed out")
	}
}

func (b *bench) rawConsume(ctx context.Context) (float64, error) {
	cons, err := b.js.CreateOrUpdateConsumer(ctx, stream.TouchpointStream, jetstream.ConsumerConfig{
		Durable: "raw", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 50000, FilterSubject: stream.AllFactsFilter, MaxRequestBatch: b.o.batch})
	if err != nil {
		return 0, err
	}
	defer b.js.DeleteConsumer(ctx, stream.TouchpointStream, "raw")
	b.begin()
	start := time.Now()
	got := 0
	for got < b.o.n {
		mb, err := cons.Fetch(b.o.batch, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return 0, err
		}
		for m := range mb.Messages() {
			_ = m.Ack()
			got++
		}
	}
	if err := b.nc.Flush(); err != nil {
		return 0, err
	}
	b.end()
	return float64(got) / time.Since(start).Seconds(), nil
}

func (b *bench) freshDB(ctx context.Context) (warehouse.Config, *warehouse.DB, error) {
	b.dbSeq++
	cfg := warehouse.Config{Addr: b.chAddr, Database: fmt.Sprintf("writer_bench_%d_%d", os.Getpid(), b.dbSeq), User: "default", DialTimeout: 5 * time.Second, MaxOpenConns: 4}
	db, err := warehouse.Open(ctx, cfg)
	if err != nil {
		return cfg, nil, err
	}
	if _, err := db.Migrate(ctx); err != nil {
		return cfg, nil, err
	}
	return cfg, db, nil
}

func dropDB(db *warehouse.DB) {
	_ = db.Conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db.Database())
	db.Close()
}

// rawInsert decodes the same messages outside the clock and times only
// the inserts, in batches of the writer's size.
func (b *bench) rawInsert(ctx context.Context) (float64, error) {
	_, db, err := b.freshDB(ctx)
	if err != nil {
		return 0, err
	}
	defer dropDB(db)
	rows := make([]warehouse.EventRow, len(b.msgs))
	now := time.Now()
	for i, m := range b.msgs {
		ev, err := stream.DecodeMsg(m.Header, m.Data)
		if err != nil {
			return 0, err
		}
		pl, err := touchpoint.Validate(&ev, now)
		if err != nil {
			return 0, err
		}
		rows[i] = warehouse.NewEventRow(uint64(i+1), &ev, &pl, now)
	}
	b.begin()
	start := time.Now()
	for i := 0; i < len(rows); i += b.o.batch {
		if err := db.InsertEvents(ctx, rows[i:min(i+b.o.batch, len(rows))]); err != nil {
			return 0, err
		}
	}
	b.end()
	return float64(len(rows)) / time.Since(start).Seconds(), nil
}

func (b *bench) writerConfig(ch warehouse.Config, batch int) writer.Config {
	var cfg writer.Config
	_ = envconfig.Process("JOURNEY_WRITER_BENCH_UNSET", &cfg)
	cfg.NATS.URL = b.natsURL
	cfg.ClickHouse = ch
	cfg.Stream = stream.DefaultTopology()
	cfg.Writer.Addr = "127.0.0.1:0"
	cfg.Writer.BatchSize = batch
	cfg.Writer.BatchAge = b.o.age
	cfg.Writer.MaxAckPending = max(cfg.Writer.MaxAckPending, 4*batch)
	return cfg
}

// waitStored polls until the table holds n rows and returns when.
func waitStored(ctx context.Context, db *warehouse.DB, n int) (time.Time, error) {
	deadline := time.Now().Add(10 * time.Minute)
	for {
		var c uint64
		if err := db.Conn.QueryRow(ctx, "SELECT count() FROM events").Scan(&c); err != nil {
			return time.Time{}, err
		}
		if c >= uint64(n) {
			if c > uint64(n) {
				return time.Time{}, fmt.Errorf("%d rows for %d events", c, n)
			}
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("only %d of %d rows after 10 minutes", c, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writerDrain times 'procs' writers (1: in this process; 2: child
// processes) storing the pre-filled stream.
func (b *bench) writerDrain(ctx context.Context, batch, procs int) (float64, error) {
	ch, db, err := b.freshDB(ctx)
	if err != nil {
		return 0, err
	}
	defer dropDB(db)
	consumer := "writer-bench-" + strconv.Itoa(b.dbSeq)
	defer b.js.DeleteConsumer(ctx, stream.TouchpointStream, consumer)
	cfg := b.writerConfig(ch, batch)
	cfg.Writer.Consumer = consumer
	var stopAll func()
	if procs == 1 {
		stopAll = b.inProc(ctx, cfg)
	} else {
		var cmds []*exec.Cmd
		for i := 0; i < procs; i++ {
			addr := freeAddr()
			cmd, err := b.childProc(cfg, addr)
			if err != nil {
				return 0, err
			}
			cmds = append(cmds, cmd)
			waitReady("http://" + addr)
		}
		stopAll = func() {
			for _, c := range cmds {
				_ = c.Process.Signal(syscall.SIGTERM)
			}
			for _, c := range cmds {
				_ = c.Wait()
			}
		}
	}
	defer stopAll()
	b.begin()
	start := time.Now()
	end, err := waitStored(ctx, db, b.o.n)
	if err != nil {
		return 0, err
	}
	b.end()
	return float64(b.o.n) / end.Sub(start).Seconds(), nil
}

// inProc starts a writer in this process and returns once /readyz says
// ready (consumer created, ClickHouse open), so startup is not timed.
func (b *bench) inProc(ctx context.Context, cfg writer.Config) func() {
	wctx, cancel := context.WithCancel(ctx)
	addr := make(chan net.Addr, 1)
	cfg.OpsReady = addr
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := writer.Run(wctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
			fmt.Fprintln(os.Stderr, "writer:", err)
		}
	}()
	waitReady("http://" + (<-addr).String())
	return func() { cancel(); wg.Wait() }
}

func waitReady(base string) {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer l.Close()
	return l.Addr().String()
}

func (b *bench) childProc(cfg writer.Config, addr string) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), childEnv+"=1",
		"JOURNEY_NATS_URL="+cfg.NATS.URL,
		"JOURNEY_CLICKHOUSE_ADDR="+cfg.ClickHouse.Addr,
		"JOURNEY_CLICKHOUSE_DATABASE="+cfg.ClickHouse.Database,
		"JOURNEY_WRITER_ADDR="+addr,
		"JOURNEY_WRITER_CONSUMER="+cfg.Writer.Consumer,
		"JOURNEY_WRITER_BATCH_SIZE="+strconv.Itoa(cfg.Writer.BatchSize),
		"JOURNEY_WRITER_BATCH_AGE="+cfg.Writer.BatchAge.String(),
		"JOURNEY_WRITER_MAX_ACK_PENDING="+strconv.Itoa(cfg.Writer.MaxAckPending),
	)
	cmd.Stderr = os.Stderr
	return cmd, cmd.Start()
}

func child() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var cfg writer.Config
	if err := envconfig.Process("JOURNEY", &cfg); err != nil {
		return err
	}
	return writer.Run(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
}

// writerLive: the writer starts on an empty stream and a publisher sends
// all events as fast as it can; the rate is events over the time until
// the last row is stored.
func (b *bench) writerLive(ctx context.Context) (float64, error) {
	for _, s := range []string{stream.TouchpointStream} {
		_ = b.js.DeleteStream(ctx, s)
	}
	if err := stream.DefaultTopology().Ensure(ctx, b.js); err != nil {
		return 0, err
	}
	ch, db, err := b.freshDB(ctx)
	if err != nil {
		return 0, err
	}
	defer dropDB(db)
	cfg := b.writerConfig(ch, b.o.batch)
	stopW := b.inProc(ctx, cfg)
	defer stopW()
	time.Sleep(500 * time.Millisecond)
	b.begin()
	start := time.Now()
	if err := b.publishAll(ctx, b.msgs, nil); err != nil {
		return 0, err
	}
	end, err := waitStored(ctx, db, b.o.n)
	if err != nil {
		return 0, err
	}
	b.end()
	return float64(b.o.n) / end.Sub(start).Seconds(), nil
}

// latency publishes at a fixed rate to a running writer (default flush
// settings) and samples count() every 10 ms. With one writer batches are
// cut and stored in stream order, so event i is visible at the first
// sample whose count exceeds i.
func (b *bench) latency(ctx context.Context) (p50, p99 float64, err error) {
	if err := b.js.DeleteStream(ctx, stream.TouchpointStream); err != nil {
		return 0, 0, err
	}
	if err := stream.DefaultTopology().Ensure(ctx, b.js); err != nil {
		return 0, 0, err
	}
	ch, db, err := b.freshDB(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer dropDB(db)
	var cfg writer.Config
	_ = envconfig.Process("JOURNEY_WRITER_BENCH_UNSET", &cfg) // the defaults
	cfg.NATS.URL, cfg.ClickHouse, cfg.Stream, cfg.Writer.Addr = b.natsURL, ch, stream.DefaultTopology(), "127.0.0.1:0"
	stopW := b.inProc(ctx, cfg)
	defer stopW()
	time.Sleep(time.Second)

	n := min(b.o.rate*b.o.latencySecs, len(b.msgs))
	sent := make([]time.Time, n)
	type sample struct {
		at time.Time
		c  uint64
	}
	var samples []sample
	pollDone := make(chan error, 1)
	go func() {
		for {
			var c uint64
			if err := db.Conn.QueryRow(ctx, "SELECT count() FROM events").Scan(&c); err != nil {
				pollDone <- err
				return
			}
			samples = append(samples, sample{time.Now(), c})
			if c >= uint64(n) {
				pollDone <- nil
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	b.begin()
	start := time.Now()
	interval := time.Second / time.Duration(b.o.rate)
	if err := b.publishAll(ctx, b.msgs[:n], func(i int) {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		sent[i] = time.Now()
	}); err != nil {
		return 0, 0, err
	}
	if err := <-pollDone; err != nil {
		return 0, 0, err
	}
	b.end()
	lat := make([]float64, n)
	k := 0
	for i := 0; i < n; i++ {
		for k < len(samples) && samples[k].c <= uint64(i) {
			k++
		}
		lat[i] = float64(samples[k].at.Sub(sent[i]).Microseconds()) / 1000
	}
	sort.Float64s(lat)
	return lat[n/2], lat[n*99/100], nil
}
