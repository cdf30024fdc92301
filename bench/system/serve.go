package bench

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/klantreis/journey/internal/natsserver"
	"github.com/klantreis/journey/services/collector"
	"github.com/klantreis/journey/services/projector"
	"github.com/klantreis/journey/services/writer"
)

// ServeEnv is the variable that makes the bench program a child service:
// its value names the service (nats, writer, projector, collector).
const ServeEnv = "JOURNEY_BENCH_SERVE"

// NATSConfig configures the NATS server child (JOURNEY_BENCH_NATS_*).
type NATSConfig struct {
	Port     int    `envconfig:"BENCH_NATS_PORT"`
	StoreDir string `envconfig:"BENCH_NATS_STORE_DIR"`
}

// ServiceConfig returns a pointer to the zero config of a child service,
// for main to fill from the environment (envconfig.Process("JOURNEY", c))
// and pass to [Serve].
func ServiceConfig(name string) (any, error) {
	switch name {
	case ProcNATS:
		return &NATSConfig{}, nil
	case ProcWriter:
		return &writer.Config{}, nil
	case ProcProjector:
		return &projector.Config{}, nil
	case ProcCollector:
		return &collector.Config{}, nil
	}
	return nil, fmt.Errorf("%w: no service %q", ErrSystem, name)
}

// Serve runs one child service with cfg (from [ServiceConfig]) until ctx
// is cancelled: the real service's Run, or the embedded NATS server of
// internal/natsserver in a process of its own, so that its CPU can be told
// apart from the services'.
func Serve(ctx context.Context, cfg any, log *slog.Logger) error {
	switch c := cfg.(type) {
	case *NATSConfig:
		if c.StoreDir == "" {
			return fmt.Errorf("%w: JOURNEY_BENCH_NATS_STORE_DIR is empty", ErrSystem)
		}
		s, err := natsserver.Start(natsserver.Options{Port: c.Port, StoreDir: c.StoreDir})
		if err != nil {
			return err
		}
		log.Info("nats serving", "url", s.ClientURL())
		<-ctx.Done()
		s.Shutdown()
		return nil
	case *writer.Config:
		return writer.Run(ctx, *c, log)
	case *projector.Config:
		return projector.Run(ctx, *c, log)
	case *collector.Config:
		return collector.Run(ctx, *c, log)
	}
	return fmt.Errorf("%w: no service for %T", ErrSystem, cfg)
}
