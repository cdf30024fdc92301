// Command journey-writer stores the touchpoint stream in ClickHouse.
// Configuration: JOURNEY_* variables, see docs/configuration.md.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
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

func realMain(ctx context.Context) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var cfg writer.Config
	if err := envconfig.Process("JOURNEY", &cfg); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	return writer.Run(ctx, cfg, log)
}
