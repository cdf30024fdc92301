// Command journey-bench is the system benchmark (`make bench`, `make
// bench-short`): it runs journey's real services against a local
// ClickHouse with the simulator as the load, prints the results as a
// markdown table and, with -out, appends them as a dated section to a
// document. See bench/system and docs/performance-system.md.
//
// ClickHouse: JOURNEY_CLICKHOUSE_ADDR (or -clickhouse) names a running
// server; otherwise a local clickhouse-server is started. The bench starts
// itself again for each service (JOURNEY_BENCH_SERVE=<service>).
//
// Looking into memory: -soak-only <rate> runs only the soak (with -soak
// for its length); JOURNEY_BENCH_PROFILE_DIR=<dir> makes every child write
// a Go heap profile there every JOURNEY_BENCH_PROFILE_EVERY (default 30s)
// and log the runtime's memory figures to its log (kept with -keep).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/klantreis/journey/bench/system"
)

func main() {
	if err := realMain(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "journey-bench:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if name := os.Getenv(bench.ServeEnv); name != "" {
		return serve(ctx, name)
	}

	short := flag.Bool("short", false, "a quick look (under 3 minutes) instead of the full run (under 20)")
	out := flag.String("out", "", "append the results as a dated section to this markdown file (and the chart next to it)")
	chAddr := flag.String("clickhouse", os.Getenv("JOURNEY_CLICKHOUSE_ADDR"), "host:port of a running ClickHouse (default: start a local one)")
	workDir := flag.String("work-dir", "", "data and logs of the run (default: a temporary directory, removed at the end)")
	keep := flag.Bool("keep", false, "keep the work directory (the children's logs)")
	soak := flag.Duration("soak", 0, "override the soak duration")
	natsMem := flag.String("nats-memlimit", "", "GOMEMLIMIT of the NATS server child (e.g. 1GiB)")
	soakOnly := flag.Float64("soak-only", 0, "run only the soak, at this rate (events/s): for looking into memory")
	window := flag.Duration("step-window", 0, "override how long each rate of the coarse search is held (full 4s, short 3s)")
	confirm := flag.Duration("confirm-window", 0, "override how long a run holds a rate before it counts as sustained (full 60s, short 10s)")
	budget := flag.Duration("budget", 0, "override the time budget of the run (full 19m, short 2m50s); the search makes fewer runs rather than overrun it")
	repo := flag.String("repo", ".", "the git checkout whose commit the report names")
	verbose := flag.Bool("v", false, "log debug detail (how long each service took to stop)")
	flag.Parse()

	o := bench.Full()
	if *short {
		o = bench.Short()
	}
	if *soak > 0 {
		o.Soak = *soak
	}
	if *natsMem != "" {
		o.NATSMemLimit = *natsMem
	}
	if *soakOnly > 0 {
		o.SoakOnly = *soakOnly
	}
	if *window > 0 {
		o.StepWindow = *window
	}
	if *confirm > 0 {
		o.ConfirmWindow = *confirm
	}
	if *budget > 0 {
		o.Budget = *budget
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	o.Exe, o.Env, o.ClickHouseAddr, o.WorkDir, o.KeepData = exe, os.Environ(), *chAddr, *workDir, *keep
	o.Commit = bench.Commit(*repo)
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	start := time.Now()
	rep, err := bench.Run(ctx, o, log)
	if err != nil {
		return err
	}
	if err := rep.WriteMarkdown(os.Stdout, ""); err != nil {
		return err
	}
	if *out != "" {
		chart, err := rep.AppendTo(*out)
		if err != nil {
			return err
		}
		log.Info("results appended", "file", *out, "chart", chart)
	}
	log.Info("bench done", "took", time.Since(start).Round(time.Second))
	return nil
}

// serve runs one child service, configured from JOURNEY_* like its own
// command would be.
func serve(ctx context.Context, name string) error {
	cfg, err := bench.ServiceConfig(name)
	if err != nil {
		return err
	}
	if err := envconfig.Process("JOURNEY", cfg); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("service", name)
	if dir := os.Getenv("JOURNEY_BENCH_PROFILE_DIR"); dir != "" {
		every, err := time.ParseDuration(os.Getenv("JOURNEY_BENCH_PROFILE_EVERY"))
		if err != nil || every <= 0 {
			every = 30 * time.Second
		}
		go bench.Profile(ctx, dir, name, every, log)
	}
	return bench.Serve(ctx, cfg, log)
}
