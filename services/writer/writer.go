// Package writer is journey's consumer that makes the touchpoint stream
// queryable: it writes every touchpoint into ClickHouse's events table
// exactly once, in batches, through ClickHouse and NATS outages, and sends
// poison messages to the dead letters. See docs/writer.md for the design.
package writer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/ops"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/warehouse"
)

// Run runs the writer until ctx is cancelled, then stops fetching, stores
// and acks what it holds (bounded by Settings.Drain) and returns. It starts
// without NATS or ClickHouse and keeps retrying both; /readyz says not
// ready until both answer. It returns an error only for a bad config or a
// failed ops listener.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	log = log.With("service", "writer")
	s := cfg.Writer
	if err := s.validate(); err != nil {
		return err
	}
	if err := cfg.Stream.Validate(); err != nil {
		return err
	}
	tc, err := s.TLS.Config()
	if err != nil {
		return fmt.Errorf("%w: JOURNEY_WRITER_TLS_*: %w", ErrConfig, err)
	}
	health := ops.NewHealth()
	m := newMetrics(health.Registry)
	ready := &readiness{}
	ready.set(errors.New("clickhouse not connected yet"))
	var consumerReady readiness
	consumerReady.set(errors.New("consumer not created yet"))
	health.AddCheck("consumer", func(context.Context) error { return consumerReady.get() })

	var dbp atomic.Pointer[warehouse.DB]
	health.AddCheck("clickhouse", func(ctx context.Context) error {
		db := dbp.Load()
		if db == nil {
			return ready.get()
		}
		// A live ping, so that an idle writer also reports an outage, and
		// the pipeline's last ClickHouse error (nil once a retry succeeded).
		if err := db.Ping(ctx); err != nil {
			return err
		}
		return ready.get()
	})
	mux := http.NewServeMux()
	health.Register(mux)
	var wg sync.WaitGroup
	opsErr := make(chan error, 1)
	listening := make(chan net.Addr, 1)
	opsCtx, stopOps := context.WithCancel(context.WithoutCancel(ctx))
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := ops.ServeTLS(opsCtx, s.Addr, mux, 5*time.Second, log, listening, tc); err != nil {
			opsErr <- fmt.Errorf("writer: ops listener %s: %w", s.Addr, err)
		}
	}()
	defer func() {
		stopOps()
		wg.Wait()
	}()
	select {
	case err := <-opsErr:
		return err
	case a := <-listening:
		log.Info("ops listening", "addr", a.String())
		if cfg.OpsReady != nil {
			cfg.OpsReady <- a
		}
	}

	if cfg.NATS.Name == "" {
		cfg.NATS.Name = "journey-writer"
	}
	nc, js, err := stream.Connect(cfg.NATS, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	health.AddCheck("nats", func(context.Context) error {
		if !nc.IsConnected() {
			return fmt.Errorf("nats %s", nc.Status())
		}
		return nil
	})

	cons, err := ensureConsumer(ctx, js, cfg, log, opsErr)
	if err != nil {
		return ignoreCancel(err)
	}
	var fnc *fence
	if s.Fence {
		if fnc, err = ensureFence(ctx, js, cfg, log, opsErr); err != nil {
			return ignoreCancel(err)
		}
	}
	consumerReady.set(nil)
	db, err := openWarehouse(ctx, cfg.ClickHouse, log, ready, opsErr)
	if err != nil {
		return ignoreCancel(err)
	}
	defer db.Close()
	ready.set(nil)
	dbp.Store(db)
	log.Info("writer running", "consumer", s.Consumer, "clickhouse", cfg.ClickHouse.Addr, "server", db.Features.Version(),
		"batch_size", s.BatchSize, "batch_age", s.BatchAge, "ack_wait", s.AckWait)

	p := &pipeline{
		set: s, cons: cons, store: db, fence: fnc, leases: newLeases(), m: m, log: log, ready: ready, now: time.Now,
		dl: func(ctx context.Context, d stream.DeadLetter) error { return stream.PublishDeadLetter(ctx, js, d) },
		crash: func(point string) {
			log.Warn("TEST HOOK: killing the process", "at", point)
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // SIGKILL cannot be caught; wait for it
		},
	}
	// The inserter outlives ctx by at most Drain: shutdown stores and acks
	// what was fetched rather than leaving it to a redelivery.
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
	go func() { defer bgWG.Done(); watchLag(bg, cons, m, s.LagInterval) }()

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
	select {
	case err := <-opsErr:
		return err
	default:
		return nil
	}
}

func ignoreCancel(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// ensureConsumer creates the stream topology and the durable consumer,
// retrying until NATS answers.
func ensureConsumer(ctx context.Context, js jetstream.JetStream, cfg Config, log *slog.Logger, fatal <-chan error) (jetstream.Consumer, error) {
	s := cfg.Writer
	cc := jetstream.ConsumerConfig{
		Durable:       s.Consumer,
		Description:   "journey writer: touchpoints into ClickHouse",
		FilterSubject: stream.AllFactsFilter,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.AckWait,
		// Never give up on a message: poison is dead-lettered by the writer,
		// everything else must eventually be stored.
		MaxDeliver:    -1,
		MaxAckPending: s.MaxAckPending,
	}
	bo := newBackoff(s.MaxBackoff)
	for {
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := cfg.Stream.Ensure(tctx, js)
		var cons jetstream.Consumer
		if err == nil {
			cons, err = js.CreateOrUpdateConsumer(tctx, stream.TouchpointStream, cc)
		}
		cancel()
		if err == nil {
			return cons, nil
		}
		if errors.Is(err, stream.ErrTopology) {
			return nil, err
		}
		d := bo.next()
		log.Warn("nats not ready; retrying", "err", err, "in", d)
		select {
		case e := <-fatal:
			return nil, e
		default:
		}
		if !sleep(ctx, d) {
			return nil, ctx.Err()
		}
	}
}

// ensureFence opens the fence bucket, retrying until NATS answers.
func ensureFence(ctx context.Context, js jetstream.JetStream, cfg Config, log *slog.Logger, fatal <-chan error) (*fence, error) {
	bo := newBackoff(cfg.Writer.MaxBackoff)
	for {
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		f, err := openFence(tctx, js, "events", cfg.Writer.AckWait, cfg.Writer.InsertTimeout, cfg.Stream.Replicas, log)
		cancel()
		if err == nil {
			return f, nil
		}
		d := bo.next()
		log.Warn("fence bucket not ready; retrying", "err", err, "in", d)
		select {
		case e := <-fatal:
			return nil, e
		default:
		}
		if !sleep(ctx, d) {
			return nil, ctx.Err()
		}
	}
}

// openWarehouse connects and migrates, retrying until ClickHouse answers.
func openWarehouse(ctx context.Context, cfg warehouse.Config, log *slog.Logger, ready *readiness, fatal <-chan error) (*warehouse.DB, error) {
	bo := newBackoff(5 * time.Second)
	for {
		db, err := warehouse.Open(ctx, cfg)
		if err == nil {
			if _, err = db.Migrate(ctx); err == nil {
				return db, nil
			}
			db.Close()
		}
		if errors.Is(err, warehouse.ErrConfig) {
			return nil, err
		}
		ready.set(err)
		d := bo.next()
		log.Warn("clickhouse not ready; retrying", "err", err, "in", d)
		select {
		case e := <-fatal:
			return nil, e
		default:
		}
		if !sleep(ctx, d) {
			return nil, ctx.Err()
		}
	}
}

// heartbeat extends the AckWait of every held message with in-progress
// acks, and confirms a lease only when a flush (PING/PONG) proves the
// server has read them.
func heartbeat(ctx context.Context, nc *nats.Conn, l *leases, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		at := time.Now()
		seqs, msgs := l.due(at.Add(-every / 2))
		if len(msgs) == 0 || !nc.IsConnected() {
			continue
		}
		for _, m := range msgs {
			_ = m.InProgress()
		}
		if err := nc.FlushTimeout(every); err != nil {
			log.Warn("in-progress acks not confirmed", "messages", len(msgs), "err", err)
			continue
		}
		l.confirm(seqs, at)
	}
}

type consumerInfo interface {
	Info(ctx context.Context) (*jetstream.ConsumerInfo, error)
}

func watchLag(ctx context.Context, c consumerInfo, m *metrics, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ictx, cancel := context.WithTimeout(ctx, every)
		info, err := c.Info(ictx)
		cancel()
		if err == nil {
			m.pending.Set(float64(info.NumPending))
			m.ackPending.Set(float64(info.NumAckPending))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
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
