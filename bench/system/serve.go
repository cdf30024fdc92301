package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"

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

// ProjectorChild configures the projector child: the service's own
// settings, and the file to write its ops server's address to once it
// listens (JOURNEY_BENCH_ADDR_FILE). The bench lets the child bind port
// 0: a port picked free in the bench could be taken by another process
// before the child bound it.
type ProjectorChild struct {
	projector.Config
	AddrFile string `envconfig:"BENCH_ADDR_FILE"`
}

// CollectorChild is the collector child's [ProjectorChild].
type CollectorChild struct {
	collector.Config
	AddrFile string `envconfig:"BENCH_ADDR_FILE"`
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
		return &ProjectorChild{}, nil
	case ProcCollector:
		return &CollectorChild{}, nil
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
	case *ProjectorChild:
		c.OpsReady = reportAddr(c.AddrFile, log)
		return projector.Run(ctx, c.Config, log)
	case *CollectorChild:
		c.Ready = reportAddr(c.AddrFile, log)
		return collector.Run(ctx, c.Config, log)
	}
	return fmt.Errorf("%w: no service for %T", ErrSystem, cfg)
}

// reportAddr returns a channel that takes the address a server bound and
// writes it to path (renamed into place, so a reader never sees half of
// it); nil when path is empty.
func reportAddr(path string, log *slog.Logger) chan<- net.Addr {
	if path == "" {
		return nil
	}
	ch := make(chan net.Addr, 1)
	go func() {
		addr := <-ch
		tmp := path + ".tmp"
		err := os.WriteFile(tmp, []byte(addr.String()), 0o644)
		if err == nil {
			err = os.Rename(tmp, path)
		}
		if err != nil {
			log.Error("bench: the bound address not written", "path", path, "err", err)
		}
	}()
	return ch
}
