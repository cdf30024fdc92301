// Command journey-simulator emits realistic customer journeys into journey
// (see docs/simulator.md). Configuration: JOURNEY_* environment variables.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/kelseyhightower/envconfig"

	"github.com/klantreis/journey/services/simulator"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := realMain(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "journey-simulator:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context) error {
	var cfg simulator.Config
	if err := envconfig.Process("JOURNEY", &cfg); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	return simulator.Run(ctx, cfg, log)
}
