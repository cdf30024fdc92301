// Command journey-stack runs the whole system locally in one process (`make
// run`): embedded NATS, a local ClickHouse, every service and the simulator.
// See README.md and docs/configuration.md.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/kelseyhightower/envconfig"

	"github.com/klantreis/journey/internal/cmdmain"
	"github.com/klantreis/journey/services/stack"
)

func main() { cmdmain.Main("journey-stack", realMain) }

func realMain(ctx context.Context) error {
	var cfg stack.Config
	// Each service reads its own variables, exactly as its own command would.
	for _, c := range []any{&cfg, &cfg.Collector, &cfg.API, &cfg.Simulator, &cfg.Writer, &cfg.Projector} {
		if err := envconfig.Process("JOURNEY", c); err != nil {
			return err
		}
	}
	_, cfg.ExternalClickHouse = os.LookupEnv("JOURNEY_CLICKHOUSE_ADDR")
	cfg.Banner = os.Stdout
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return stack.Run(ctx, cfg, log)
}
