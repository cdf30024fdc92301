// Package writer is journey's consumer that makes the touchpoint stream
// queryable: it writes every touchpoint into ClickHouse's events table
// exactly once, in batches, through ClickHouse and NATS outages, and sends
// poison messages to the dead letters. See docs/writer.md for the design.
package writer

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/ops"
	"github.com/klantreis/journey/pkg/retry"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/suppression"
	"github.com/klantreis/journey/pkg/warehouse"
)

// Run runs the writer until ctx is cancelled, then stops fetching, stores
// and acks what it holds (bounded by Settings.Drain) and returns. It starts
// without NATS or ClickHouse and keeps retrying both; /readyz says not
// ready until both answer. It returns an error only for a bad config or a
// failed ops listener.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	w, err := build(cfg, log)
	if err != nil {
		return err
	}
	return w.run(ctx)
}

// service is a writer built and not yet run.
type service struct {
	cfg Config
	log *slog.Logger
	tls *tls.Config
	// health serves /readyz: ready is ClickHouse's last error (the
	// pipeline's too), consumerReady the consumer's.
	health        *ops.Health
	m             *metrics
	ready         *readiness
	consumerReady *readiness
}

// build checks cfg; it fails only for a bad configuration.
func build(cfg Config, log *slog.Logger) (*service, error) {
	if log == nil {
		log = slog.Default()
	}
	log = log.With("service", "writer")
	if err := cfg.Writer.validate(); err != nil {
		return nil, err
	}
	if err := cfg.Stream.Validate(); err != nil {
		return nil, err
	}
	if cfg.Writer.Input == InputReplay {
		// Its own durable name: dead letters are keyed by consumer and
		// stream sequence, and REPLAY's sequences are not TOUCHPOINTS'.
		cfg.Writer.Consumer += "-replay"
	}
	tc, err := cfg.Writer.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("%w: JOURNEY_WRITER_TLS_*: %w", ErrConfig, err)
	}
	w := &service{cfg: cfg, log: log, tls: tc, health: ops.NewHealth(), ready: &readiness{}, consumerReady: &readiness{}}
	w.m = newMetrics(w.health.Registry)
	w.ready.set(errors.New("clickhouse not connected yet"))
	w.consumerReady.set(errors.New("consumer not created yet"))
	w.health.AddCheck("consumer", func(context.Context) error { return w.consumerReady.get() })
	return w, nil
}

// run serves the ops endpoints, which outlive ctx until the drain is
// done, connects NATS and ClickHouse, and runs the pipeline. A failed ops
// listener stops it.
func (w *service) run(ctx context.Context) error {
	cfg, s, log := w.cfg, w.cfg.Writer, w.log
	g := ops.NewGroup(context.WithoutCancel(ctx))
	defer func() {
		g.Stop()
		_ = g.Wait(0)
	}()
	// ClickHouse is connected in the background from the start, beside
	// NATS; the consumer is created first, and the pipeline waits for both.
	wh := warehouse.Connect(ctx, cfg.ClickHouse, warehouse.ConnectOptions{Max: 5 * time.Second,
		OnRetry: func(err error, wait time.Duration) {
			w.ready.set(err)
			log.Warn("clickhouse not ready; retrying", "err", err, "in", wait)
		}})
	defer wh.Close()
	w.health.AddCheck("clickhouse", func(ctx context.Context) error {
		db := wh.DB()
		if db == nil {
			return w.ready.get()
		}
		// A live ping, so that an idle writer also reports an outage, and
		// the pipeline's last ClickHouse error (nil once a retry succeeded).
		if err := db.Ping(ctx); err != nil {
			return err
		}
		return w.ready.get()
	})
	if err := w.serveOps(g); err != nil {
		return err
	}
	// The rest ends with ctx or when the ops listener fails.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	defer context.AfterFunc(g.Context(), stop)()
	failed := func(err error) error {
		if gerr := g.Err(); gerr != nil {
			return gerr
		}
		return ignoreCancel(err)
	}

	if cfg.NATS.Name == "" {
		cfg.NATS.Name = "journey-writer"
	}
	nc, js, err := stream.Connect(cfg.NATS, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	w.health.AddCheck("nats", func(context.Context) error {
		if !nc.IsConnected() {
			return fmt.Errorf("nats %s", nc.Status())
		}
		return nil
	})

	cons, err := ensureConsumer(ctx, js, cfg, log)
	if err != nil {
		return failed(err)
	}
	var fnc *fence
	if s.Fence {
		if fnc, err = ensureFence(ctx, js, cfg, log); err != nil {
			return failed(err)
		}
	}
	// Before anything is consumed: no event of an erased customer is stored.
	supp, err := suppression.StartGuard(ctx, js, cfg.Stream.Replicas, "writer", w.health.Registry, log)
	if err != nil {
		return failed(err)
	}
	w.consumerReady.set(nil)
	db, err := wh.Wait(ctx)
	if err != nil {
		return failed(err)
	}
	w.ready.set(nil)
	log.Info("writer running", "consumer", s.Consumer, "clickhouse", cfg.ClickHouse.Addr, "server", db.Features.Version(),
		"batch_size", s.BatchSize, "batch_age", s.BatchAge, "ack_wait", s.AckWait)

	p := &pipeline{
		set: s, cons: cons, store: db, fence: fnc, insertPrefix: insertQueryPrefix(db.Database()), leases: newLeases(), m: w.m, log: log, ready: w.ready, now: time.Now, supp: supp,
		dl:   func(ctx context.Context, d stream.DeadLetter) error { return stream.PublishDeadLetter(ctx, js, d) },
		hook: cfg.crash,
		crash: func(point string) {
			log.Warn("TEST HOOK: killing the process", "at", point)
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // SIGKILL cannot be caught; wait for it
		},
	}
	w.pump(ctx, p, db, nc, cons)
	return g.Err()
}

// serveOps starts the ops listener in g and waits until it listens (or
// has failed, which it returns).
func (w *service) serveOps(g *ops.Group) error {
	s := w.cfg.Writer
	mux := http.NewServeMux()
	w.health.Register(mux)
	listening := make(chan net.Addr, 1)
	g.GoService("writer: ops listener "+s.Addr, func(ctx context.Context) error {
		return ops.ServeTLS(ctx, s.Addr, mux, 5*time.Second, w.log, listening, w.tls)
	})
	select {
	case <-g.Context().Done():
		return g.Err()
	case a := <-listening:
		w.log.Info("ops listening", "addr", a.String())
		if w.cfg.OpsReady != nil {
			w.cfg.OpsReady <- a
		}
		return nil
	}
}

// pump runs the pipeline until ctx ends, then drains: the inserter outlives
// ctx by at most Drain, so shutdown stores and acks what was fetched rather
// than leaving it to a redelivery.
func (w *service) pump(ctx context.Context, p *pipeline, db *warehouse.DB, nc *nats.Conn, cons jetstream.Consumer) {
	s, log := w.cfg.Writer, w.log
	drainCtx, cancelDrain := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelDrain()
	stopDrainTimer := context.AfterFunc(ctx, func() {
		time.AfterFunc(s.Drain, cancelDrain)
	})
	defer stopDrainTimer()

	bg, stopBG := context.WithCancel(drainCtx)
	var bgWG sync.WaitGroup
	bgWG.Add(2)
	go func() { defer bgWG.Done(); heartbeat(bg, nc, p.leases, s.heartbeat(), log) }()
	go func() { defer bgWG.Done(); watchLag(bg, cons, w.m, s.LagInterval) }()

	batches := make(chan []*item)
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.insertLoop(drainCtx, batches)
	}()
	p.read(ctx, batches)
	<-done
	stopBG()
	bgWG.Wait()
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		log.Warn("flushing acks at shutdown", "err", err)
	}
	log.Info("writer stopped", "held_unacked", p.leases.len())
}

func ignoreCancel(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// ensureConsumer creates the stream topology and the durable consumer,
// retrying until NATS answers.
func ensureConsumer(ctx context.Context, js jetstream.JetStream, cfg Config, log *slog.Logger) (jetstream.Consumer, error) {
	s := cfg.Writer
	cc := stream.WriterConsumerConfig(s.Consumer, s.AckWait, s.MaxAckPending)
	streamName := stream.TouchpointStream
	if s.Input == InputReplay {
		streamName, cc.FilterSubject, cc.Description = stream.ReplayStream, stream.ReplayFilter(stream.ReplayWarehouse), "journey writer: replayed touchpoints into ClickHouse"
	}
	var cons jetstream.Consumer
	err := retryStartup(ctx, s.MaxBackoff, natsAttempt, log, "nats not ready", func(err error) bool { return errors.Is(err, stream.ErrTopology) },
		func(ctx context.Context) error {
			err := cfg.Stream.Ensure(ctx, js)
			if err == nil {
				cons, err = js.CreateOrUpdateConsumer(ctx, streamName, cc)
			}
			return err
		})
	return cons, err
}

// ensureFence opens the fence bucket, retrying until NATS answers.
func ensureFence(ctx context.Context, js jetstream.JetStream, cfg Config, log *slog.Logger) (*fence, error) {
	var f *fence
	err := retryStartup(ctx, cfg.Writer.MaxBackoff, natsAttempt, log, "fence bucket not ready", nil, func(ctx context.Context) error {
		var err error
		f, err = openFence(ctx, js, "events", cfg.Writer.AckWait, cfg.Writer.InsertTimeout, cfg.Stream.Replicas, log)
		return err
	})
	return f, err
}

// natsAttempt bounds one attempt of a NATS start-up step.
const natsAttempt = 10 * time.Second

// retryStartup runs a start-up step until it succeeds, fails for good
// (permanent, when set, says which errors are) or ctx ends, logging each
// failure as what. timeout, when > 0, bounds each attempt.
func retryStartup(ctx context.Context, max, timeout time.Duration, log *slog.Logger, what string,
	permanent func(error) bool, fn func(context.Context) error) error {
	return retry.Do(ctx, retry.Policy{Max: max, AttemptTimeout: timeout, Permanent: permanent,
		OnRetry: func(_ int, err error, d time.Duration) { log.Warn(what+"; retrying", "err", err, "in", d) }}, fn)
}

// heartbeat extends the AckWait of every held message with in-progress
// acks, and confirms a lease only when a flush (PING/PONG) proves the
// server has read them.
func heartbeat(ctx context.Context, nc *nats.Conn, l *leases, every time.Duration, log *slog.Logger) {
	ops.Every(ctx, every, func(context.Context) {
		at := time.Now()
		seqs, msgs := l.due(at.Add(-every / 2))
		if len(msgs) == 0 || !nc.IsConnected() {
			return
		}
		for _, m := range msgs {
			_ = m.InProgress()
		}
		if err := nc.FlushTimeout(every); err != nil {
			log.Warn("in-progress acks not confirmed", "messages", len(msgs), "err", err)
			return
		}
		l.confirm(seqs, at)
	})
}

type consumerInfo interface {
	Info(ctx context.Context) (*jetstream.ConsumerInfo, error)
}

func watchLag(ctx context.Context, c consumerInfo, m *metrics, every time.Duration) {
	ops.EveryFromNow(ctx, every, func(ctx context.Context) {
		ictx, cancel := context.WithTimeout(ctx, every)
		info, err := c.Info(ictx)
		cancel()
		if err == nil {
			m.pending.Set(float64(info.NumPending))
			m.ackPending.Set(float64(info.NumAckPending))
		}
	})
}

// readiness holds the last error of a dependency (nil: ready).
type readiness struct {
	mu  sync.Mutex
	err error
}

func (r *readiness) set(err error) {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
}

func (r *readiness) get() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func headersJSON(h nats.Header) string {
	if len(h) == 0 {
		return "{}"
	}
	b, err := json.Marshal(h)
	if err != nil {
		return "{}"
	}
	return string(b)
}
