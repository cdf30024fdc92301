package collector

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/ops"
	"github.com/klantreis/journey/pkg/retry"
	"github.com/klantreis/journey/pkg/stream"
)

// Run serves the collector on cfg.Collector.Addr until ctx is cancelled,
// then lets requests in flight finish (up to Settings.Drain) and closes the
// NATS connection. It starts even when NATS is down: the connection keeps
// retrying, /readyz reports not ready and events get 503 until it is up,
// and the topology is ensured in the background once NATS answers. It
// fails at start on a bad setting, without tokens ([ErrNoTokens]) or when
// the address cannot be bound.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	if err := cfg.Stream.Validate(); err != nil {
		return err
	}
	if cfg.NATS.Name == "" {
		cfg.NATS.Name = "journey-collector"
	}
	tc, err := cfg.Collector.TLS.Config()
	if err != nil {
		return fmt.Errorf("collector: JOURNEY_COLLECTOR_TLS_*: %w", err)
	}
	nc, _, err := stream.Connect(cfg.NATS, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := NewJetStream(nc, cfg.NATS, cfg.Collector)
	if err != nil {
		return err
	}
	c, err := New(cfg.Collector, nc, js, ops.NewHealth(), log)
	if err != nil {
		return err
	}
	// The topology loop stops with Serve, also when Serve fails at once
	// (address taken) while NATS is still down.
	ectx, stopEnsure := context.WithCancel(ctx)
	defer stopEnsure()
	ensured := make(chan struct{})
	go func() {
		defer close(ensured)
		ensureTopology(ectx, cfg.Stream, js, log)
	}()
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		c.FollowSuppression(ectx, js, cfg.Stream.Replicas)
	}()
	defer func() { <-followed }()
	log.Info("collector listening", "addr", cfg.Collector.Addr, "nats", cfg.NATS.URL, "browser_source", cfg.Collector.BrowserSource)
	err = ops.ServeTLS(ctx, cfg.Collector.Addr, c.Handler(), cfg.Collector.Drain, log, cfg.Ready, tc)
	stopEnsure()
	<-ensured
	if err != nil {
		return fmt.Errorf("collector: serve %s: %w", cfg.Collector.Addr, err)
	}
	// Every handler has had its acks by now; flush what is left anyway.
	if derr := nc.FlushTimeout(time.Second); derr != nil && nc.IsConnected() {
		log.Warn("nats flush at shutdown", "err", derr)
	}
	return nil
}

// ensureTopology creates or updates the streams, retrying with backoff
// (up to 10s apart) until it succeeds or ctx ends: NATS may come up after
// the collector.
func ensureTopology(ctx context.Context, topo stream.Topology, js jetstream.JetStream, log *slog.Logger) {
	attempts := 1
	err := retry.Do(ctx, retry.Policy{Initial: 250 * time.Millisecond, Max: 10 * time.Second, AttemptTimeout: 5 * time.Second,
		OnRetry: func(attempt int, err error, _ time.Duration) {
			attempts = attempt + 1
			if attempt == 1 || attempt%10 == 0 {
				log.Warn("stream topology not ensured yet; retrying", "attempt", attempt, "err", err)
			}
		}}, func(ctx context.Context) error { return topo.Ensure(ctx, js) })
	if err == nil {
		log.Info("stream topology ensured", "attempts", attempts)
	}
}
