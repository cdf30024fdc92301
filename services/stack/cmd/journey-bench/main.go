// Command journey-bench is the system benchmark (`make bench`, `make
// bench-short`): it runs journey's real services against a local
// ClickHouse with the simulator as the load, prints the results as a
// markdown table and, with -out, appends them as a dated section to a
// document. See services/stack/bench and docs/performance-system.md.
//
// ClickHouse: JOURNEY_CLICKHOUSE_ADDR (or -clickhouse) names a running
// server; otherwise a local clickhouse-server is started. The bench starts
// itself again for each service (JOURNEY_BENCH_SERVE=<service>).
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

	"github.com/klantreis/journey/services/stack/bench"
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
	window := flag.Duration("step-window", 0, "override how long each rate of the search is held")
	repo := flag.String("repo", ".", "the git checkout whose commit the report names")
	flag.Parse()

	o := bench.Full()
	if *short {
		o = bench.Short()
	}
	if *soak > 0 {
		o.Soak = *soak
	}
	if *window > 0 {
		o.StepWindow = *window
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	o.Exe, o.Env, o.ClickHouseAddr, o.WorkDir, o.KeepData = exe, os.Environ(), *chAddr, *workDir, *keep
	o.Commit = bench.Commit(*repo)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
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
	return bench.Serve(ctx, cfg, log)
}
