// Command journey-projector derives each customer's lifecycle stage and
// satisfaction from the touchpoint stream.
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

	"github.com/klantreis/journey/services/projector"
)

func main() {
	if err := realMain(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "journey-projector:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var cfg projector.Config
	if err := envconfig.Process("JOURNEY", &cfg); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	return projector.Run(ctx, cfg, log)
}
