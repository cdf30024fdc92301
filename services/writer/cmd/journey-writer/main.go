// Command journey-writer stores the touchpoint stream in ClickHouse.
// Configuration: JOURNEY_* variables, see docs/configuration.md.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/kelseyhightower/envconfig"

	"github.com/klantreis/journey/services/writer"
)

func main() {
	if err := realMain(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "journey-writer:", err)
		os.Exit(1)
	}
}

// gcPercent is the writer's garbage-collection target unless GOGC is set.
// The writer allocates ~7 KB per event (NATS message and headers, decoded
// event, row, column buffers) and the collector was 12-20 % of its CPU;
// with 200 instead of Go's 100 the drain's CPU per event fell by 9-32 %
// (mean 20 %) in 4 alternating writer-bench pairs (docs/perf-writer.md), for a heap that
// may grow to ~3x instead of ~2x the two batches it holds.
const gcPercent = 200

func realMain(ctx context.Context) error {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var cfg writer.Config
	if err := envconfig.Process("JOURNEY", &cfg); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	return writer.Run(ctx, cfg, log)
}
