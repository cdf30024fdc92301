package api

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/klantreis/journey/pkg/ops"
	"github.com/klantreis/journey/pkg/warehouse"
)

// Run serves the API and dashboard on cfg.API.Addr until ctx is cancelled,
// then lets requests in flight finish for up to cfg.API.Drain. It serves at
// once; while ClickHouse is unreachable, /readyz fails and /v1 answers 503,
// and it keeps connecting (backoff up to 10s) and applies the migrations,
// whose views it reads. ready, if not nil, receives the bound address.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	return RunNotify(ctx, cfg, log, nil)
}

// RunNotify is Run that sends the listening address on ready (for tests
// and the local stack, which may listen on port 0).
func RunNotify(ctx context.Context, cfg Config, log *slog.Logger, ready chan<- net.Addr) error {
	if log == nil {
		log = slog.Default()
	}
	toks, err := parseTokens(cfg.API.Tokens, cfg.API.TokensFile)
	if err != nil {
		return err
	}
	if len(toks) == 0 {
		if !cfg.API.Open {
			return fmt.Errorf("%w: no API token: set JOURNEY_API_TOKENS or JOURNEY_API_TOKENS_FILE (token=read or token=admin), or JOURNEY_API_OPEN=true to serve without one (local use only)", ErrConfig)
		}
		log.Warn("JOURNEY_API_OPEN is set and there is no token: the API and dashboard are open to anyone who can reach " + cfg.API.Addr)
	}
	tc, err := cfg.API.TLS.Config()
	if err != nil {
		return fmt.Errorf("%w: JOURNEY_API_TLS_*: %w", ErrConfig, err)
	}
	var db *warehouse.DB
	dbReady := make(chan struct{})
	health := ops.NewHealth()
	srv, err := NewServer(cfg.API, health, func(ctx context.Context) error {
		select {
		case <-dbReady:
			return db.Ping(ctx)
		default:
			return errNotReady
		}
	}, log)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	connected := make(chan struct{})
	go func() {
		defer close(connected)
		d, err := connect(ctx, cfg.ClickHouse, log)
		if err != nil {
			return
		}
		db = d
		close(dbReady)
		srv.SetStore(d)
		log.Info("api reading clickhouse", "addr", cfg.ClickHouse.Addr, "database", cfg.ClickHouse.Database, "version", d.Features.Version())
	}()
	log.Info("api listening", "addr", cfg.API.Addr, "tls", tc != nil, "tokens", len(toks))
	err = ops.ServeTLS(ctx, cfg.API.Addr, srv.Handler(), cfg.API.Drain, log, ready, tc)
	cancel()
	<-connected
	if db != nil {
		db.Close()
	}
	if err != nil {
		return fmt.Errorf("api: serve %s: %w", cfg.API.Addr, err)
	}
	return nil
}

// connect opens ClickHouse and migrates, retrying until ctx ends.
func connect(ctx context.Context, c warehouse.Config, log *slog.Logger) (*warehouse.DB, error) {
	wait := 250 * time.Millisecond
	for {
		db, err := warehouse.Open(ctx, c)
		if err == nil {
			if _, err = db.Migrate(ctx); err == nil {
				return db, nil
			}
			db.Close()
		}
		log.Warn("clickhouse not ready, retrying", "addr", c.Addr, "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		if wait *= 2; wait > 10*time.Second {
			wait = 10 * time.Second
		}
	}
}
