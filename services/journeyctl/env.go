package journeyctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/user"
	"time"

	"github.com/alecthomas/kong"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/warehouse"
	"github.com/klantreis/journey/services/projector"
)

// Config is the configuration journeyctl shares with the services
// (JOURNEY_NATS_*, JOURNEY_STREAM_*, JOURNEY_CLICKHOUSE_*, and
// JOURNEY_PROJECTOR_* for the base rules version's thresholds, bucket and
// consumers). main fills it with envconfig; flags in [Globals] override it.
type Config struct {
	NATS       stream.Conn      `envconfig:"NATS"`
	Stream     stream.Topology  `envconfig:"STREAM"`
	ClickHouse warehouse.Config `envconfig:"CLICKHOUSE"`
	// Projector names the projector's stores, which erase covers.
	Projector ProjectorNames `envconfig:"PROJECTOR"`
	// ProjectorSettings are the same JOURNEY_PROJECTOR_* variables as the
	// projector's: a re-derive takes the base rules version's thresholds,
	// consumer names and consumer settings from them.
	ProjectorSettings projector.Settings `envconfig:"PROJECTOR"`
	// Retention is what `journeyctl retention` expires (JOURNEY_RETENTION_*).
	Retention RetentionSettings `envconfig:"RETENTION"`
}

// Env is what every command runs with: configuration, output and lazily
// opened connections.
type Env struct {
	Config Config
	Out    io.Writer // results (text, or JSON with --json)
	Err    io.Writer // progress and diagnostics
	// TTY is true when Err is a terminal: progress is then a bar, else
	// plain lines every ProgressEvery.
	TTY           bool
	ProgressEvery time.Duration
	Log           *slog.Logger
	// Now is the clock (tests may fix it); nil means time.Now.
	Now func() time.Time

	globals Globals
	nc      *nats.Conn
	js      jetstream.JetStream
	db      *warehouse.DB
}

func (e *Env) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// JS connects to NATS on first use and ensures the streams journeyctl
// needs, the OPS stream included.
func (e *Env) JS(ctx context.Context) (jetstream.JetStream, error) {
	if e.js != nil {
		return e.js, nil
	}
	c := e.Config.NATS
	if c.Name == "" {
		c.Name = "journeyctl"
	}
	nc, js, err := stream.Connect(c, e.Log)
	if err != nil {
		return nil, err
	}
	tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := e.Config.Stream.Ensure(tctx, js); err != nil {
		nc.Close()
		return nil, err
	}
	if _, err := js.CreateOrUpdateStream(tctx, OpsStreamConfig(e.Config.Stream)); err != nil {
		nc.Close()
		return nil, fmt.Errorf("journeyctl: ensure %s: %w", OpsStream, err)
	}
	e.nc, e.js = nc, js
	return js, nil
}

// both opens NATS and ClickHouse, for the commands that need the two.
func (e *Env) both(ctx context.Context) (jetstream.JetStream, *warehouse.DB, error) {
	js, err := e.JS(ctx)
	if err != nil {
		return nil, nil, err
	}
	db, err := e.DB(ctx)
	if err != nil {
		return nil, nil, err
	}
	return js, db, nil
}

// DB opens ClickHouse on first use and applies the migrations (ops_audit
// and deadletter_resolutions among them).
func (e *Env) DB(ctx context.Context) (*warehouse.DB, error) {
	if e.db != nil {
		return e.db, nil
	}
	db, err := warehouse.Open(ctx, e.Config.ClickHouse)
	if err != nil {
		return nil, err
	}
	if _, err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	e.db = db
	return db, nil
}

// Actor names who runs the command: --actor, else the OS user.
func (e *Env) Actor() string {
	if e.globals.Actor != "" {
		return e.globals.Actor
	}
	if u, err := user.Current(); err == nil {
		return "os:" + u.Username
	}
	return "os:unknown"
}

// JSON reports whether --json was given.
func (e *Env) JSON() bool { return e.globals.JSON }

// emit writes v as indented JSON with --json, else calls text.
func (e *Env) emit(v any, text func(w io.Writer)) error {
	if e.globals.JSON {
		enc := json.NewEncoder(e.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	text(e.Out)
	return nil
}

func (e *Env) close() {
	if e.nc != nil {
		_ = e.nc.Drain()
	}
	if e.db != nil {
		_ = e.db.Close()
	}
}

// exitPanic carries kong's exit (after --help) out of Parse.
type exitPanic int

// Run parses args and runs the command, returning the exit code. Errors
// are printed to env.Err (as {"error": ...} on stdout with --json).
func Run(ctx context.Context, args []string, env *Env) (code int) {
	if env.Log == nil {
		env.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if env.ProgressEvery == 0 {
		env.ProgressEvery = 5 * time.Second
	}
	var cli CLI
	parser, err := kong.New(&cli,
		kong.Name("journeyctl"),
		kong.Description("Operations for journey: status, dead letters, replay, erase. Exit codes: 0 ok, 1 failure, 2 usage, 3 verification failed, 4 not found."),
		kong.Writers(env.Out, env.Err),
		kong.Exit(func(c int) { panic(exitPanic(c)) }),
		kong.BindTo(ctx, (*context.Context)(nil)),
		kong.Bind(env),
	)
	if err != nil {
		fmt.Fprintln(env.Err, "journeyctl:", err)
		return ExitFailure
	}
	defer func() {
		if r := recover(); r != nil {
			c, ok := r.(exitPanic)
			if !ok {
				panic(r)
			}
			code = int(c)
		}
	}()
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintln(env.Err, "journeyctl:", err)
		var pe *kong.ParseError
		if errors.As(err, &pe) {
			_ = pe.Context.PrintUsage(true)
		}
		return ExitUsage
	}
	env.globals = cli.Globals
	if g := cli.Globals; g.NATSURL != "" {
		env.Config.NATS.URL = g.NATSURL
	}
	if g := cli.Globals; g.ClickHouseAddr != "" {
		env.Config.ClickHouse.Addr = g.ClickHouseAddr
	}
	if g := cli.Globals; g.ClickHouseDB != "" {
		env.Config.ClickHouse.Database = g.ClickHouseDB
	}
	defer env.close()
	err = kctx.Run()
	if err != nil {
		if env.globals.JSON {
			_ = json.NewEncoder(env.Out).Encode(map[string]any{"error": err.Error(), "exit": ExitCode(err)})
		}
		fmt.Fprintln(env.Err, "journeyctl:", err)
	}
	return ExitCode(err)
}
