// Package stack runs the whole of journey in one process on a developer's
// machine (`make run`): an embedded NATS server with JetStream, a
// project-local ClickHouse (or the one JOURNEY_CLICKHOUSE_ADDR names), the
// migrations, every service and the simulator. It is the one package that
// imports the services: it composes them, it adds no behaviour of its own.
package stack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klantreis/journey/internal/chserver"
	"github.com/klantreis/journey/internal/natsserver"
	"github.com/klantreis/journey/pkg/ops"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/tlsconfig"
	"github.com/klantreis/journey/pkg/warehouse"
	"github.com/klantreis/journey/services/api"
	"github.com/klantreis/journey/services/collector"
	"github.com/klantreis/journey/services/journeyctl"
	"github.com/klantreis/journey/services/projector"
	"github.com/klantreis/journey/services/simulator"
	"github.com/klantreis/journey/services/writer"
)

// Config is the stack's configuration. Its own variables are
// JOURNEY_STACK_*; the shared JOURNEY_STREAM_* and JOURNEY_CLICKHOUSE_*
// apply to every service. The services' configs are loaded by main from
// their own variables and passed in; the stack overrides only what it owns:
// the NATS URL, the ClickHouse address and listen ports that are taken.
type Config struct {
	Stream     stream.Topology  `envconfig:"STREAM"`
	ClickHouse warehouse.Config `envconfig:"CLICKHOUSE"`
	Stack      Settings         `envconfig:"STACK"`

	// ExternalClickHouse: use ClickHouse.Addr instead of starting a local
	// server (main sets it when JOURNEY_CLICKHOUSE_ADDR is set).
	ExternalClickHouse bool `ignored:"true"`

	Collector collector.Config `ignored:"true"`
	API       api.Config       `ignored:"true"`
	Simulator simulator.Config `ignored:"true"`
	Projector projector.Config `ignored:"true"`
	Writer    writer.Config    `ignored:"true"`

	// Banner receives the human-readable "where to look" text (nil: none).
	Banner io.Writer `ignored:"true"`
	// Ready, if set, receives the endpoints once everything runs.
	Ready chan<- Endpoints `ignored:"true"`
}

// Settings are the stack's own settings (JOURNEY_STACK_*).
type Settings struct {
	// DataDir holds NATS's and ClickHouse's data (default .data); a second
	// start reuses it.
	DataDir string `envconfig:"DATA_DIR" default:".data"`
	// NATSPort of the embedded NATS server (default 4222; a free port if
	// taken, which the stack says).
	NATSPort int `envconfig:"NATS_PORT" default:"4222"`
	// ClickHousePort is the native port of the local ClickHouse (default
	// 9000; a free port if taken, which the stack says).
	ClickHousePort int `envconfig:"CLICKHOUSE_PORT" default:"9000"`
	// ClickHouseNice runs the local ClickHouse at this CPU niceness, 0–19
	// (default 0). On a small machine, 10–19 gives the broker and the
	// projector the CPU first (figures in docs/configuration.md), at the
	// cost of slower inserts and dashboards while the machine is busy.
	ClickHouseNice int `envconfig:"CLICKHOUSE_NICE" default:"0"`
	// Simulator runs the simulator in the stack (default true).
	Simulator bool `envconfig:"SIMULATOR" default:"true"`
	// FirstBackfill is the history the simulator writes on the first start
	// (empty data directory) unless JOURNEY_SIMULATOR_BACKFILL is set
	// (default 9600h, about 400 days: long enough for customers to churn).
	FirstBackfill time.Duration `envconfig:"FIRST_BACKFILL" default:"9600h"`
	// NATSTLS makes the embedded NATS server require TLS with this
	// certificate (JOURNEY_STACK_NATS_TLS_*); the services then need
	// JOURNEY_NATS_TLS_CA_FILE. Off by default: the server listens on
	// loopback only.
	NATSTLS tlsconfig.Server `envconfig:"NATS_TLS"`
	// ShutdownTimeout bounds the drain of the services at Ctrl-C (default 60s).
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"60s"`
}

// Endpoints is where the running stack can be reached.
type Endpoints struct {
	NATSURL string
	// NATSAdminPasswordFile holds the password of the NATS user admin for
	// this run (the nats CLI's); the file is readable by its owner only.
	NATSAdminPasswordFile string
	ClickHouseAddr        string
	CollectorURL          string
	CollectorToken        string
	// APIToken is the API's and dashboard's token for this run (admin
	// scope; "" when JOURNEY_API_TOKENS or _FILE or _OPEN is set).
	APIToken string
	// WriterOps serves the writer's /healthz, /readyz and /metrics.
	WriterOps string
	// ProjectorOps serves the projector's /healthz, /readyz and /metrics.
	ProjectorOps string
	// APIURL serves the API and the dashboard.
	APIURL string
	// ClickHouseAdminPasswordFile holds the password of the local
	// ClickHouse's journey_admin for this run ("" with an external server).
	ClickHouseAdminPasswordFile string
	// DataDir is the absolute data directory.
	DataDir string
}

// ErrStack marks a failure to bring the stack up.
var ErrStack = errors.New("stack")

// component is one service run by the stack.
type component struct {
	name string
	run  func(ctx context.Context) error
	// mayFinish: returning nil before being stopped is normal (a simulator
	// with a limit); for a service it is a failure.
	mayFinish bool
	// readyz is the service's readiness URL ("" for none).
	readyz string
}

// Run brings the stack up and keeps it running until ctx is cancelled, then
// stops the simulator (flushing it), drains the services, stops NATS and
// stops ClickHouse cleanly. If any service fails, the others are stopped
// the same way and its error returned.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	st, err := build(ctx, cfg, log)
	defer st.close()
	if err != nil {
		return err
	}
	return st.run(ctx, cfg, log)
}

// stack is a stack built and not yet run: NATS and ClickHouse started,
// migrated and with their streams, and the services configured.
type stack struct {
	ep         Endpoints
	chCfg      warehouse.Config
	firstStart bool
	natsUsers  natsUsers
	chUsers    clickHouseLogins
	services   []component
	sim        []component
	// closers stop what build started, in reverse order.
	closers []func()
}

func (st *stack) close() {
	for i := len(st.closers) - 1; i >= 0; i-- {
		st.closers[i]()
	}
}

// build starts NATS and ClickHouse, migrates, creates the streams and
// configures the services. What it started is stopped by close, also when
// it fails.
func build(ctx context.Context, cfg Config, log *slog.Logger) (*stack, error) {
	st := &stack{}
	dataDir, err := filepath.Abs(cfg.Stack.DataDir)
	if err != nil {
		return st, err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return st, fmt.Errorf("%w: data directory: %w", ErrStack, err)
	}
	st.ep.DataDir = dataDir
	if err := st.startNATS(cfg, log); err != nil {
		return st, err
	}
	if err := st.startClickHouse(ctx, cfg, log); err != nil {
		return st, err
	}
	if err := migrate(ctx, st.chUsers.as(st.chCfg, chserver.RoleAdmin, "journey_admin"), log); err != nil {
		return st, err
	}
	// Streams, before any service, so none races another to create them.
	// Its own connection's close is not news: no logger for it.
	// The services' JOURNEY_NATS_TLS_* are the stack's too.
	nc, js, err := stream.Connect(st.natsUsers.conn(stream.Conn{URL: st.ep.NATSURL, Name: "journey-stack", ReconnectWait: 500 * time.Millisecond, RequestTimeout: 5 * time.Second,
		TLS: cfg.Writer.NATS.TLS}, stream.UserAdmin), slog.New(slog.DiscardHandler))
	if err != nil {
		return st, err
	}
	err = cfg.Stream.Ensure(ctx, js)
	nc.Close()
	if err != nil {
		return st, err
	}
	st.configure(cfg, log)
	return st, nil
}

// startNATS starts the embedded NATS server, every service with its own
// user with the permissions of deploy/nats and a password for this run.
func (st *stack) startNATS(cfg Config, log *slog.Logger) error {
	s := cfg.Stack
	natsDir := filepath.Join(st.ep.DataDir, "nats")
	_, statErr := os.Stat(natsDir)
	st.firstStart = errors.Is(statErr, os.ErrNotExist)
	var err error
	if st.natsUsers, err = natsAuth(cfg, st.ep.DataDir); err != nil {
		return err
	}
	natsTLS, err := s.NATSTLS.Config()
	if err != nil {
		return fmt.Errorf("%w: JOURNEY_STACK_NATS_TLS_*: %w", ErrStack, err)
	}
	ns, err := natsserver.Start(natsserver.Options{Port: s.NATSPort, FallbackToFree: true, StoreDir: natsDir,
		Auth: st.natsUsers.config, Passwords: st.natsUsers.vars(), TLS: natsTLS})
	if err != nil {
		return fmt.Errorf("%w: embedded NATS: %w", ErrStack, err)
	}
	st.closers = append(st.closers, func() {
		ns.Shutdown()
		log.Info("nats stopped")
	})
	if s.NATSPort != 0 && ns.Port() != s.NATSPort {
		log.Warn("NATS port taken, using a free one", "wanted", s.NATSPort, "port", ns.Port())
	}
	st.ep.NATSURL = ns.ClientURL()
	st.ep.NATSAdminPasswordFile = st.natsUsers.adminFile
	return nil
}

// startClickHouse starts the local ClickHouse, with a user per role and a
// password for this run (the default user is locked), unless the stack
// uses an external one.
func (st *stack) startClickHouse(ctx context.Context, cfg Config, log *slog.Logger) error {
	st.chCfg = cfg.ClickHouse
	if cfg.ExternalClickHouse {
		st.ep.ClickHouseAddr = st.chCfg.Addr
		return nil
	}
	s := cfg.Stack
	port := freeOr("127.0.0.1", s.ClickHousePort, "ClickHouse", log)
	var err error
	if st.chUsers, err = clickHouseUsers(st.ep.DataDir, st.chCfg.Database); err != nil {
		return err
	}
	ch, err := chserver.Start(ctx, chserver.Options{Dir: filepath.Join(st.ep.DataDir, "clickhouse"), TCPPort: port, Nice: s.ClickHouseNice,
		Users: st.chUsers.list()})
	if errors.Is(err, chserver.ErrNotInstalled) {
		return fmt.Errorf("%w: clickhouse-server is not installed: install it (Debian/Ubuntu: apt-get install clickhouse-server clickhouse-client; `make run` does it as root) or set JOURNEY_CLICKHOUSE_ADDR to a running server: %w", ErrStack, err)
	}
	if err != nil {
		return fmt.Errorf("%w: local ClickHouse: %w", ErrStack, err)
	}
	st.closers = append(st.closers, func() {
		if err := ch.Stop(); err != nil {
			log.Error("clickhouse stop", "err", err)
			return
		}
		log.Info("clickhouse stopped")
	})
	st.ep.ClickHouseAddr = ch.Addr()
	st.chCfg.Addr = ch.Addr()
	st.ep.ClickHouseAdminPasswordFile = st.chUsers.adminFile
	return nil
}

// configure points each service at the stack's NATS and ClickHouse, with
// its own user, and on a free port.
func (st *stack) configure(cfg Config, log *slog.Logger) {
	ep, chCfg, natsUsers, chUsers := &st.ep, st.chCfg, st.natsUsers, st.chUsers
	service := func(name, addr string, run func(ctx context.Context) error) {
		st.services = append(st.services, component{name: name, readyz: "http://" + addr + "/readyz", run: run})
	}

	cc := cfg.Collector
	cc.NATS = natsUsers.conn(cc.NATS, stream.UserCollector)
	cc.NATS.URL = ep.NATSURL
	cc.Stream = cfg.Stream
	cc.Collector.Addr = freeAddr(cc.Collector.Addr, "collector", log)
	if cc.Collector.Tokens == "" && cc.Collector.TokensFile == "" {
		// A token for this run only, for the simulator and for curl.
		ep.CollectorToken = "local-" + randomHex(12)
		cc.Collector.Tokens = ep.CollectorToken + "=*"
	}
	ep.CollectorURL = "http://" + cc.Collector.Addr + "/v1/events"
	service("collector", cc.Collector.Addr, func(ctx context.Context) error {
		return collector.Run(ctx, cc, log.With("service", "collector"))
	})

	ac := st.configureAPI(cfg, log)
	service("api", ac.API.Addr, func(ctx context.Context) error { return api.Run(ctx, ac, log.With("service", "api")) })

	wc := cfg.Writer
	wc.NATS = natsUsers.conn(wc.NATS, stream.UserWriter)
	wc.NATS.URL = ep.NATSURL
	wc.Stream = cfg.Stream
	wc.ClickHouse = chUsers.as(chCfg, chserver.RoleReadWrite, "journey_writer")
	wc.Writer.Addr = freeAddr(wc.Writer.Addr, "writer", log)
	ep.WriterOps = "http://" + wc.Writer.Addr + "/metrics"
	service("writer", wc.Writer.Addr, func(ctx context.Context) error { return writer.Run(ctx, wc, log.With("service", "writer")) })

	pc := cfg.Projector
	pc.NATS = natsUsers.conn(pc.NATS, stream.UserProjector)
	pc.NATS.URL = ep.NATSURL
	pc.Stream = cfg.Stream
	pc.ClickHouse = chUsers.as(chCfg, chserver.RoleReadWrite, "journey_projector")
	pc.Projector.Addr = freeAddr(pc.Projector.Addr, "projector", log)
	ep.ProjectorOps = "http://" + pc.Projector.Addr + "/metrics"
	service("projector", pc.Projector.Addr, func(ctx context.Context) error {
		return projector.Run(ctx, pc, log.With("service", "projector"))
	})

	// The replay readers: a writer and a projector on the REPLAY stream, so
	// that `journeyctl replay --to warehouse|projector` works here too
	// (docs/operations.md, "Replay"). Idle until a replay runs.
	rw := wc
	rw.Writer.Input, rw.Writer.Addr = writer.InputReplay, freeAddr("127.0.0.1:0", "writer-replay", log)
	service("writer-replay", rw.Writer.Addr, func(ctx context.Context) error {
		return writer.Run(ctx, rw, log.With("service", "writer-replay"))
	})
	rp := pc
	rp.Projector.Input, rp.Projector.Addr = projector.InputReplay, freeAddr("127.0.0.1:0", "projector-replay", log)
	service("projector-replay", rp.Projector.Addr, func(ctx context.Context) error {
		return projector.Run(ctx, rp, log.With("service", "projector-replay"))
	})

	if ac.API.OpsActions {
		st.services = append(st.services, jobsWorker(cfg, pc, ep.NATSURL, natsUsers, chUsers, chCfg, log))
	}
	if cfg.Stack.Simulator {
		st.configureSimulator(cfg, log)
	}
}

// configureAPI gives the api its read-only users (admin ones where it
// runs erasures or ops actions), a free port and, unless tokens are set,
// a token for this run.
func (st *stack) configureAPI(cfg Config, log *slog.Logger) api.Config {
	ep, chCfg, natsUsers, chUsers := &st.ep, st.chCfg, st.natsUsers, st.chUsers
	ac := cfg.API
	ac.NATS = natsUsers.conn(ac.NATS, stream.UserAPI)
	ac.NATS.URL = ep.NATSURL
	ac.ClickHouse = chUsers.as(chCfg, chserver.RoleReadOnly, "journey_api")
	ac.API.Addr = freeAddr(ac.API.Addr, "api", log)
	if len(ac.API.Tokens) == 0 && ac.API.TokensFile == "" && !ac.API.Open {
		// A token for this run only, with every scope: the dashboard's
		// login and curl.
		ep.APIToken = "local-" + randomHex(12)
		ac.API.Tokens = []string{ep.APIToken + "=admin"}
	}
	if ac.API.Erasure || ac.API.OpsActions {
		// JOURNEY_API_ERASURE=true or JOURNEY_API_OPS_ACTIONS=true: the
		// erasure endpoints and the ops actions run as admin
		// (docs/privacy.md); by default the api keeps its read-only users.
		ac.NATS = natsUsers.conn(stream.Conn{URL: ep.NATSURL, Name: "journey-api-erasure", TLS: cfg.Writer.NATS.TLS}, stream.UserAdmin)
		admin := chUsers.as(chCfg, chserver.RoleAdmin, "journey_admin")
		ac.API.ErasureClickHouseUser, ac.API.ErasureClickHousePassword = admin.User, admin.Password
	}
	ep.APIURL = "http://" + ac.API.Addr + "/"
	return ac
}

// configureSimulator points the simulator at the stack's NATS or
// collector, and backfills the first start.
func (st *stack) configureSimulator(cfg Config, log *slog.Logger) {
	ep, natsUsers := &st.ep, st.natsUsers
	sc := cfg.Simulator
	sc.NATS = natsUsers.conn(sc.NATS, stream.UserSimulator)
	sc.NATS.URL = ep.NATSURL
	sc.Stream = cfg.Stream
	if sc.Simulator.Sink == "collector" {
		sc.Simulator.CollectorURL = ep.CollectorURL
		if sc.Simulator.CollectorToken == "" {
			sc.Simulator.CollectorToken = ep.CollectorToken
		}
	}
	if st.firstStart && sc.Simulator.Backfill == 0 {
		sc.Simulator.Backfill = cfg.Stack.FirstBackfill
	}
	st.sim = append(st.sim, component{name: "simulator", mayFinish: true, run: func(ctx context.Context) error {
		return simulator.Run(ctx, sc, log.With("service", "simulator"))
	}})
}

// member is c as a member of the run group: an error once the stack is
// stopping is logged, not a failure of the stack.
func (c component) member(log *slog.Logger) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		err := c.run(ctx)
		switch {
		case ctx.Err() != nil && err != nil:
			log.Error("service stopped with an error", "service", c.name, "err", err)
			return nil
		case ctx.Err() == nil && err == nil && c.mayFinish:
			log.Info("finished", "service", c.name)
		}
		return err
	}
}

// run runs the services, and the simulator once they are ready, until ctx
// ends or one fails; then it stops the simulator, and then the services,
// waiting up to ShutdownTimeout for them to drain.
func (st *stack) run(ctx context.Context, cfg Config, log *slog.Logger) error {
	// The services outlive ctx: they are stopped after the simulator.
	g := ops.NewGroup(context.WithoutCancel(ctx))
	for _, c := range st.services {
		g.GoService(c.name, c.member(log))
	}
	// The banner and the simulator wait until every service is ready, so
	// that "running" means running; a slow one is reported, not fatal. A
	// failure or ctx ends the wait.
	waitCtx, stopWait := context.WithCancel(ctx)
	defer stopWait()
	defer context.AfterFunc(g.Context(), stopWait)()
	for _, c := range st.services {
		if err := waitReady(waitCtx, c.readyz, 60*time.Second); err != nil && waitCtx.Err() == nil {
			log.Warn("service not ready yet", "service", c.name, "err", err)
		}
	}
	simCtx, stopSim := context.WithCancel(g.Context())
	defer stopSim()
	var simWG sync.WaitGroup
	if waitCtx.Err() == nil {
		for _, c := range st.sim {
			run := c.member(log)
			simWG.Add(1)
			g.Go(c.name, func(context.Context) error { defer simWG.Done(); return run(simCtx) })
		}
		if cfg.Banner != nil {
			banner(cfg.Banner, st.ep, st.chCfg, cfg.Stack.Simulator)
		}
		if cfg.Ready != nil {
			select {
			case cfg.Ready <- st.ep:
			case <-waitCtx.Done():
			}
		}
	}

	select {
	case <-ctx.Done():
		log.Info("stopping: simulator first, then the services drain")
	case <-g.Context().Done():
		log.Error("stopping after a failure", "err", g.Err())
	}
	runErr := g.Err()
	stopSim()
	simWG.Wait()
	g.Stop()
	if err := g.Wait(cfg.Stack.ShutdownTimeout); errors.Is(err, ops.ErrDrain) {
		log.Error("services did not drain in time", "timeout", cfg.Stack.ShutdownTimeout)
	}
	if runErr != nil {
		return fmt.Errorf("%w: %w", ErrStack, runErr)
	}
	return nil
}

// migrate applies the ClickHouse migrations before any service starts.
func migrate(ctx context.Context, c warehouse.Config, log *slog.Logger) error {
	db, err := warehouse.Open(ctx, c)
	if err != nil {
		return fmt.Errorf("%w: ClickHouse at %s: %w", ErrStack, c.Addr, err)
	}
	defer db.Close()
	applied, err := db.Migrate(ctx)
	if err != nil {
		return fmt.Errorf("%w: migrations: %w", ErrStack, err)
	}
	log.Info("clickhouse ready", "addr", c.Addr, "version", db.Features.Version(), "database", c.Database, "migrations_applied", len(applied))
	return nil
}

// freeAddr returns addr if it can be listened on, else the same host with a
// free port, saying so.
func freeAddr(addr, what string, log *slog.Logger) string {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return addr // the service reports the bad address itself
	}
	port, _ := strconv.Atoi(portStr)
	return net.JoinHostPort(host, strconv.Itoa(freeOr(host, port, what, log)))
}

// freeOr returns port if it is free on host, else a free port, saying so.
func freeOr(host string, port int, what string, log *slog.Logger) int {
	if port != 0 {
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err == nil {
			l.Close()
			return port
		}
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return port
	}
	free := l.Addr().(*net.TCPAddr).Port
	l.Close()
	if port != 0 {
		log.Warn(what+" port taken, using a free one", "wanted", port, "port", free)
	}
	return free
}

// waitReady polls a readiness URL until it answers 200 or timeout passes.
func waitReady(ctx context.Context, url string, timeout time.Duration) error {
	if url == "" {
		return nil // a component without a readiness endpoint (the jobs worker)
	}
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := client.Get(url)
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s", url, resp.Status)
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func banner(w io.Writer, ep Endpoints, ch warehouse.Config, sim bool) {
	host, port, _ := net.SplitHostPort(ep.ClickHouseAddr)
	fmt.Fprintf(w, "\njourney is running (Ctrl-C stops it; data in %s)\n\n", ep.DataDir)
	fmt.Fprintf(w, "  collector       %s\n", ep.CollectorURL)
	if ep.CollectorToken != "" {
		fmt.Fprintf(w, "                  token for this run: %s\n", ep.CollectorToken)
		fmt.Fprintf(w, "                  curl -H 'Authorization: Bearer %s' -H 'Content-Type: application/cloudevents-batch+json' -d '[]' %s\n", ep.CollectorToken, ep.CollectorURL)
	}
	fmt.Fprintf(w, "  API+dashboard   %s\n", ep.APIURL)
	if ep.APIToken != "" {
		fmt.Fprintf(w, "                  token for this run (scopes read, admin): %s\n", ep.APIToken)
		fmt.Fprintf(w, "                  dashboard: %slogin?token=%s\n", ep.APIURL, ep.APIToken)
		fmt.Fprintf(w, "                  curl -H 'Authorization: Bearer %s' %sv1/metrics/nps\n", ep.APIToken, ep.APIURL)
	} else {
		fmt.Fprintf(w, "                  curl %sv1/metrics/nps\n", ep.APIURL)
	}
	fmt.Fprintf(w, "  writer ops      %s\n", ep.WriterOps)
	fmt.Fprintf(w, "  projector ops   %s\n", ep.ProjectorOps)
	fmt.Fprintf(w, "  NATS            %s\n", ep.NATSURL)
	fmt.Fprintf(w, "                  nats --server %s --user admin --password \"$(cat %s)\" stream info TOUCHPOINTS\n", ep.NATSURL, ep.NATSAdminPasswordFile)
	fmt.Fprintf(w, "  ClickHouse      %s (database %s)\n", ep.ClickHouseAddr, ch.Database)
	if ep.ClickHouseAdminPasswordFile != "" {
		fmt.Fprintf(w, "                  clickhouse-client --host %s --port %s --database %s --user journey_admin --password \"$(cat %s)\"\n", host, port, ch.Database, ep.ClickHouseAdminPasswordFile)
	} else {
		fmt.Fprintf(w, "                  clickhouse-client --host %s --port %s --database %s\n", host, port, ch.Database)
	}
	if sim {
		fmt.Fprintf(w, "  simulator       feeding journeys (JOURNEY_SIMULATOR_* to tune, JOURNEY_STACK_SIMULATOR=false to stop it)\n")
	}
	fmt.Fprintln(w)
}

// logLines logs each line written to it at info level: the jobs worker's
// progress and diagnostics.
type logLines struct{ log *slog.Logger }

func (l logLines) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			l.log.Info(line)
		}
	}
	return len(p), nil
}

// jobsWorker runs the jobs of POST /v1/ops/jobs, as admin, with the
// stack's topology and projector settings (what journeyctl would read
// from the same JOURNEY_* variables).
func jobsWorker(cfg Config, pc projector.Config, natsURL string, natsUsers natsUsers, chUsers clickHouseLogins, chCfg warehouse.Config, log *slog.Logger) component {
	jc := journeyctl.Config{Stream: cfg.Stream, ProjectorSettings: pc.Projector,
		Projector: journeyctl.ProjectorNames{Bucket: pc.Projector.Bucket, IndexBucket: pc.Projector.IndexBucket, OutboxStream: pc.Projector.OutboxStream}}
	jc.NATS = natsUsers.conn(stream.Conn{URL: natsURL, Name: "journey-jobs-worker", TLS: cfg.Writer.NATS.TLS}, stream.UserAdmin)
	jc.ClickHouse = chUsers.as(chCfg, chserver.RoleAdmin, "journey_admin")
	return component{name: "jobs-worker", run: func(ctx context.Context) error {
		jlog := log.With("service", "jobs-worker")
		env := &journeyctl.Env{Config: jc, Out: io.Discard, Err: logLines{jlog}, Log: jlog}
		if code := journeyctl.Run(ctx, []string{"--actor", "stack", "jobs", "work"}, env); code != journeyctl.ExitOK && ctx.Err() == nil {
			return fmt.Errorf("jobs worker exited %d", code)
		}
		return nil
	}}
}
