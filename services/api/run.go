package api

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/klantreis/journey/pkg/ops"
	"github.com/klantreis/journey/pkg/opsstatus"
	"github.com/klantreis/journey/pkg/stream"
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
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wh := warehouse.Connect(ctx, cfg.ClickHouse, warehouse.ConnectOptions{Max: 10 * time.Second,
		OnRetry: func(err error, wait time.Duration) {
			log.Warn("clickhouse not ready, retrying", "addr", cfg.ClickHouse.Addr, "err", err, "in", wait)
		}})
	defer wh.Close()
	health := ops.NewHealth()
	srv, err := NewServer(cfg.API, health, func(ctx context.Context) error {
		if db := wh.DB(); db != nil {
			return db.Ping(ctx)
		}
		return errNotReady
	}, log)
	if err != nil {
		return err
	}
	if cfg.API.OpsSample > 0 {
		nc, js, err := stream.Connect(cfg.NATS, log)
		if err != nil {
			return fmt.Errorf("%w: JOURNEY_NATS_*: %w", ErrConfig, err)
		}
		defer nc.Close()
		go srv.RunOps(ctx, opsstatus.Reader{JS: js, Streams: cfg.API.OpsStreams, DeadLetterStream: stream.DeadLetterStream}, cfg.API.OpsSample)
	}
	stored := make(chan struct{})
	go func() {
		defer close(stored)
		d, err := wh.Wait(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Error("clickhouse not connected; /v1 answers 503", "err", err)
			}
			return
		}
		srv.SetStore(d)
		log.Info("api reading clickhouse", "addr", cfg.ClickHouse.Addr, "database", cfg.ClickHouse.Database, "version", d.Features.Version())
		if cfg.API.FollowRules {
			followRules(ctx, cfg.NATS, d, srv, log)
		}
	}()
	erasing := make(chan struct{})
	go func() {
		defer close(erasing)
		if cfg.API.Erasure || cfg.API.OpsActions {
			startAdmin(ctx, cfg, srv, log)
		}
	}()
	log.Info("api listening", "addr", cfg.API.Addr, "tls", tc != nil, "tokens", len(toks), "erasure", cfg.API.Erasure, "ops_actions", cfg.API.OpsActions)
	err = ops.ServeTLS(ctx, cfg.API.Addr, srv.Handler(), cfg.API.Drain, log, ready, tc)
	cancel()
	<-stored
	<-erasing
	if err != nil {
		return fmt.Errorf("api: serve %s: %w", cfg.API.Addr, err)
	}
	return nil
}
