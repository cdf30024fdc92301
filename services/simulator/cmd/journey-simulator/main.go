// Command journey-simulator emits realistic customer journeys into journey
// (see docs/simulator.md). Configuration: JOURNEY_* environment variables.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/kelseyhightower/envconfig"

	"github.com/klantreis/journey/internal/cmdmain"
	"github.com/klantreis/journey/services/simulator"
)

func main() { cmdmain.Main("journey-simulator", realMain) }

func realMain(ctx context.Context) error {
	var cfg simulator.Config
	if err := envconfig.Process("JOURNEY", &cfg); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	return simulator.Run(ctx, cfg, log)
}
