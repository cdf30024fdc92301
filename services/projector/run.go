package projector

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/ops"
	"github.com/klantreis/journey/pkg/projection"
	"github.com/klantreis/journey/pkg/retry"
	"github.com/klantreis/journey/pkg/ruleset"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/suppression"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
)

// Run projects until ctx is cancelled, then finishes the batches in hand
// (bounded by Drain) and returns nil. It returns an error only for
// a bad configuration or when the ops address cannot be bound. It
// outlives NATS and ClickHouse outages: the connection reconnects forever,
// a batch that cannot be committed is retried with backoff (up to
// MaxBackoff between attempts) and acknowledged only once its state is
// written, and warehouse rows wait in the outbox while ClickHouse is away.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	svc, err := build(cfg, log)
	if err != nil {
		return err
	}
	defer svc.nc.Close()
	return svc.run(ctx)
}

// service is a projector built and not yet run: its configuration
// checked, its rules compiled and its NATS connection made.
type service struct {
	cfg     Config
	log     *slog.Logger
	parts   []int
	rules   *journey.Rulebook
	nc      *nats.Conn
	js      jetstream.JetStream
	timeout time.Duration
	tls     *tls.Config
}

// build checks cfg and connects to NATS (the connection keeps trying in
// the background). It fails only for a bad configuration.
func build(cfg Config, log *slog.Logger) (*service, error) {
	if log == nil {
		log = slog.Default()
	}
	for _, w := range cfg.Projector.useDeprecated() {
		log.Warn(w)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Projector.Input == InputReplay {
		// Consumers and an outbox of its own: the outbox is a work queue,
		// which takes one consumer per subject.
		cfg.Projector.Durable += "-replay"
		cfg.Projector.OutboxStream += "_REPLAY"
	}
	parts, err := cfg.Projector.OwnedPartitions(cfg.Stream.Partitions)
	if err != nil {
		return nil, err
	}
	rules, err := journey.NewRulebook(cfg.Projector.Rules())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	tc, err := cfg.Projector.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("%w: JOURNEY_PROJECTOR_TLS_*: %w", ErrConfig, err)
	}
	if cfg.NATS.Name == "" {
		cfg.NATS.Name = "journey-projector"
	}
	nc, _, err := stream.Connect(cfg.NATS, log)
	if err != nil {
		return nil, err
	}
	timeout := cfg.NATS.RequestTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	// A batch publishes up to BatchSize states, rows and derived events
	// per partition at once; the default async window (4000) would stall
	// the partitions against each other.
	// An ack lost with a killed stream leader fails its future after
	// attemptTimeout; without a timeout it would hold its slot for ever.
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(timeout),
		jetstream.WithPublishAsyncMaxPending(max(1<<14, 8*cfg.Projector.BatchSize*len(parts))),
		jetstream.WithPublishAsyncTimeout(attemptTimeout))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("projector: jetstream: %w", err)
	}
	return &service{cfg: cfg, log: log, parts: parts, rules: rules, nc: nc, js: js, timeout: timeout, tls: tc}, nil
}

// run serves the ops endpoints, connects ClickHouse, opens the streams and
// buckets and runs the outbox loader and a worker per partition, all in
// one group: when one fails, all stop.
func (s *service) run(ctx context.Context) error {
	cfg, log := s.cfg, s.log
	g := ops.NewGroup(ctx)
	health := ops.NewHealth()
	met := newMetrics(health.Registry)
	// ClickHouse is connected in the background: the outbox holds the
	// rows until then.
	wh := warehouse.Connect(g.Context(), cfg.ClickHouse, warehouse.ConnectOptions{Max: cfg.Projector.MaxBackoff,
		OnRetry: func(err error, wait time.Duration) {
			log.Warn("connect clickhouse failed; retrying", "err", err, "in", wait)
		}})
	defer wh.Close()
	g.Go("clickhouse", func(ctx context.Context) error {
		if db, err := wh.Wait(ctx); err == nil {
			log.Info("clickhouse connected", "addr", cfg.ClickHouse.Addr, "version", db.Features.Version())
		} else if ctx.Err() == nil {
			log.Error("clickhouse not connected; rows wait in the outbox", "err", err)
		}
		return nil
	})
	health.AddCheck("nats", func(context.Context) error {
		if st := s.nc.Status(); st != nats.CONNECTED {
			return fmt.Errorf("nats %s", st)
		}
		return nil
	})
	health.AddCheck("clickhouse", func(ctx context.Context) error {
		db := wh.DB()
		if db == nil {
			return wh.Err()
		}
		return db.Ping(ctx)
	})
	mux := http.NewServeMux()
	health.Register(mux)
	g.Go("ops server", func(ctx context.Context) error {
		return ops.ServeTLS(ctx, cfg.Projector.Addr, mux, cfg.Projector.Drain, log, cfg.OpsReady, s.tls)
	})
	if err := s.start(g, wh, met, health.Registry); err != nil {
		g.Stop()
		_ = g.Wait(0)
		return err
	}
	if err := g.Wait(0); err != nil {
		return fmt.Errorf("projector: %w", err)
	}
	log.Info("projector stopped")
	return nil
}

// start opens the streams and buckets (retrying until NATS answers) and
// starts the outbox loader and the partitions' workers in g.
func (s *service) start(g *ops.Group, wh warehouseConn, met *metrics, reg *prometheus.Registry) error {
	cfg, js, log := s.cfg, s.js, s.log
	var stateKV, indexKV, accountKV jetstream.KeyValue
	setup := func(ctx context.Context) error {
		if err := cfg.Stream.Ensure(ctx, js); err != nil {
			return err
		}
		var err error
		if stateKV, err = openBucket(ctx, js, cfg.Projector.Bucket, "journey customer states (projector)", cfg.Stream.Replicas); err != nil {
			return err
		}
		indexKV, err = openBucket(ctx, js, cfg.Projector.IndexBucket, "journey inactivity expiry index (projector)", cfg.Stream.Replicas)
		if err != nil {
			return err
		}
		if _, err := js.CreateOrUpdateStream(ctx, stream.ProjectorOutboxConfig(cfg.Projector.OutboxStream, cfg.Stream.Replicas)); err != nil {
			return fmt.Errorf("projector: outbox stream: %w", err)
		}
		if cfg.Projector.Accounts.Enabled {
			accountKV, err = openBucket(ctx, js, cfg.Projector.Accounts.Bucket, "journey account states and contacts (projector)", cfg.Stream.Replicas)
		}
		return err
	}
	if err := keepTrying(g.Context(), log, "setup streams and buckets", cfg.Projector.MaxBackoff, setup); err != nil {
		return nil // stopped while waiting for NATS
	}
	// Before anything is consumed: no event of an erased customer is applied.
	supp, err := suppression.StartGuard(g.Context(), js, cfg.Stream.Replicas, "projector", reg, log)
	if err != nil {
		return nil // stopped while waiting for NATS
	}
	ld := &loader{js: js, stream: cfg.Projector.OutboxStream, durable: stream.ProjectorOutboxDurable(cfg.Projector.Durable), db: wh,
		maxRows: cfg.Projector.WarehouseBatch, maxWait: cfg.Projector.WarehouseWait, retryMax: cfg.Projector.MaxBackoff, ackWait: cfg.Projector.AckWait, met: met, log: log}
	g.Go("outbox loader", func(ctx context.Context) error { ld.run(ctx); return nil })

	// B2B accounts (off by default): one service beside the partitions,
	// fed every committed batch through the projection's account hook.
	accounts, err := newAccountService(cfg.Projector, js, accountKV, &derivedEmitter{js: js, timeout: s.timeout}, cfg.Projector.OutboxStream, s.timeout, s.nc)
	if err != nil {
		return err
	}
	if accounts != nil {
		g.Go("accounts", func(ctx context.Context) error { accounts.run(ctx, log); return nil })
		g.Go("account refresh", func(ctx context.Context) error { accounts.refresh(ctx, log); return nil })
	}

	// The workers follow the live rules version (follow.go): each move
	// of the pointer stops them and starts them on the new version's
	// rulebook, buckets, consumers and tables.
	g.Go("rules versions", func(ctx context.Context) error {
		return followRules(ctx, js, cfg, log,
			func(ctx context.Context, v ruleset.Version) (*preparedVersion, error) {
				return s.prepareVersion(ctx, v, stateKV, indexKV)
			},
			func(ctx context.Context, pv *preparedVersion, prev *ruleset.Version) error {
				return s.runVersion(ctx, pv, prev, supp, accounts, met, reg)
			})
	})
	return nil
}

// keepTrying runs fn until it succeeds or ctx ends, backing off (with
// jitter) from 100ms up to maxWait.
func keepTrying(ctx context.Context, log *slog.Logger, what string, maxWait time.Duration, fn func(context.Context) error) error {
	return retry.Do(ctx, retry.Policy{Max: maxWait, OnRetry: func(_ int, err error, wait time.Duration) {
		log.Warn(what+" failed; retrying", "err", err, "in", wait)
	}}, fn)
}

// worker owns one partition: its durable consumer, its projector (cache
// and sweep schedule) and its batches, on one goroutine, which keeps a
// customer's events in stream order.
type worker struct {
	part    int
	cfg     Settings
	js      jetstream.JetStream
	proj    *projection.Projector
	index   *kvIndex
	met     *metrics
	log     *slog.Logger
	durable string
	// lost, when set, ends every write at once (no drain): a group member
	// whose lease on the partition may have expired (group.go).
	lost context.Context
	supp *suppression.Guard // drops (acks) the events of erased customers
	// quiet applies events up to a stream sequence without derived events
	// (follow.go); nil for none.
	quiet *quietUpTo
	// ckpt holds states and touchpoints until a checkpoint (checkpoint.go);
	// nil without checkpoint mode.
	ckpt *checkpointer
}

// loadIndex rebuilds the partition's sweep schedule from the expiry
// index. In checkpoint mode the checkpoint learns which customers still
// have a one-customer key; without, shards left by checkpoint mode are
// turned back into one-customer keys.
func (w *worker) loadIndex(ctx context.Context) error {
	res, err := w.index.load(ctx, w.part, w.proj.Schedule)
	if err != nil {
		return err
	}
	w.log.Info("sweep schedule rebuilt", "customers", res.entries, "shards", len(res.shards))
	if w.ckpt != nil {
		w.ckpt.index.single = res.single
		return nil
	}
	return w.index.unshard(ctx, w.part, res)
}

// streamName is the stream the worker consumes.
func (w *worker) streamName() string {
	if w.cfg.Input == InputReplay {
		return stream.ReplayStream
	}
	return stream.TouchpointStream
}

// consumerConfig is the partition's consumer under the worker's durable
// name, which is the rules version's (follow.go), on REPLAY for a replay
// reader.
func (w *worker) consumerConfig() jetstream.ConsumerConfig {
	c := stream.ProjectorPartitionConsumerConfig(w.cfg.Durable, w.part, w.cfg.AckWait, w.cfg.BatchSize)
	c.Durable = w.durable
	if w.cfg.Input == InputReplay {
		c.FilterSubject = stream.ReplayPartitionFilter(stream.ReplayProjector, w.part)
		c.Description = "journey projector (replay), partition " + partitionLabel(w.part)
	}
	if w.ckpt != nil {
		c.MaxAckPending = max(c.MaxAckPending, ckptMaxAckPending(w.cfg))
	}
	return c
}

func (w *worker) run(ctx context.Context) {
	var cons jetstream.Consumer
	if err := keepTrying(ctx, w.log, "create consumer", w.cfg.MaxBackoff, func(ctx context.Context) error {
		var err error
		cons, err = w.js.CreateOrUpdateConsumer(ctx, w.streamName(), w.consumerConfig())
		return err
	}); err != nil {
		return
	}
	if err := keepTrying(ctx, w.log, "load expiry index", w.cfg.MaxBackoff, w.loadIndex); err != nil {
		return
	}
	lagCtx, stopLag := context.WithCancel(ctx)
	defer stopLag()
	go w.reportLag(lagCtx, cons)

	// Writes get a context that outlives ctx by Drain, so a batch
	// in hand is finished on shutdown instead of being redelivered.
	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHard()
	if w.lost != nil {
		defer context.AfterFunc(w.lost, cancelHard)()
	}
	go func() {
		select {
		case <-ctx.Done():
			select {
			case <-time.After(w.cfg.Drain):
			case <-hard.Done():
			}
			cancelHard()
		case <-hard.Done():
		}
	}()
	bo := retry.New(time.Second, w.cfg.MaxBackoff)
	for ctx.Err() == nil {
		it, err := cons.Messages(jetstream.PullMaxMessages(2*w.cfg.BatchSize), jetstream.PullHeartbeat(stream.PullHeartbeat))
		if err != nil {
			w.log.Warn("consume failed; retrying", "err", err)
			bo.Wait(ctx)
			continue
		}
		bo.Reset()
		silent := w.loop(ctx, hard, it)
		if w.ckpt != nil {
			w.checkpoint(hard) // what was applied is written and acked, not redelivered
		}
		w.giveBack(ctx, it, silent)
	}
}

// loop reads batches until ctx ends or the iterator breaks, or (silent)
// until it delivered nothing for stream.SilentPull, when the caller pulls
// afresh: its pull request may have gone with a killed consumer leader.
func (w *worker) loop(ctx, hard context.Context, it jetstream.MessagesContext) (silent bool) {
	pull := stream.Watch(it, stream.SilentPull)
	behind := false // the last batch left events in the stream
	batch := make([]jetstream.Msg, 0, w.cfg.BatchSize)
	nextSweep := time.Now() // a restart sweeps what expired while it was down
	for ctx.Err() == nil {
		if !time.Now().Before(nextSweep) {
			w.sweep(ctx, hard)
			nextSweep = time.Now().Add(w.cfg.SweepInterval)
		}
		wait := min(time.Second, time.Until(nextSweep))
		if w.ckpt != nil {
			w.awaitCheckpoint(w.ckpt.full())
			if w.ckpt.due() {
				w.startCheckpoint(hard)
			}
			wait = min(wait, w.ckpt.until())
		}
		batch = batch[:0]
		m, err := pull.Next(max(wait, time.Millisecond))
		if err != nil {
			if errors.Is(err, nats.ErrTimeout) {
				continue
			}
			if errors.Is(err, stream.ErrSilentPull) {
				// Idle, or the pull request was lost; only the latter
				// leaves events behind in the stream.
				if behind {
					w.log.Warn("pull delivered nothing though the stream holds more for the partition; pulling again", "for", stream.SilentPull)
				} else {
					w.log.Debug("partition idle; pulling again", "for", stream.SilentPull)
				}
				return true
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return false
			}
			w.log.Warn("next message", "err", err)
			continue
		}
		batch = append(batch, m)
		// BatchAge bounds the wait for events that have not arrived yet,
		// not the taking of those already buffered: each Next costs a few
		// microseconds (more on a busy machine), so a 2 ms deadline cut a
		// backlog into batches of a few hundred and every customer was
		// written several times over. Past the deadline a batch still
		// takes what is in hand, up to BatchSize. While the stream holds
		// more for this partition (a backlog: a restart, a replay, a burst)
		// it waits up to maxGather for them too: a partition that cannot
		// keep up otherwise applies whatever trickled in while it wrote,
		// and small batches write each customer more often, which slows it
		// further. A full batch writes a customer once for all its events.
		start := time.Now()
		deadline := start.Add(w.cfg.BatchAge)
		for len(batch) < w.cfg.BatchSize {
			wait := max(time.Until(deadline), bufferedWait)
			m, err := pull.Next(wait)
			if err != nil {
				// Only a timeout: a closed iterator must end the batch at
				// once, not spin until maxGather.
				if errors.Is(err, nats.ErrTimeout) && backlogged(batch[len(batch)-1]) && time.Since(start) < maxGather {
					deadline = time.Now().Add(time.Millisecond)
					continue
				}
				break
			}
			batch = append(batch, m)
		}
		behind = backlogged(batch[len(batch)-1])
		w.apply(ctx, hard, batch)
	}
	return false
}

// backlogged reports whether the stream held more events for this consumer
// when m was delivered (pending beyond what was already delivered). A
// partition that keeps up sees 0: the iterator's pull covers everything.
func backlogged(m jetstream.Msg) bool {
	md, err := m.Metadata()
	return err == nil && md.NumPending > 0
}

// maxGather bounds how long a backlogged partition waits to fill a batch.
// It adds at most that much to the latency of an event, and only when
// events are already waiting in the stream.
const maxGather = 250 * time.Millisecond

// bufferedWait is how long Next waits past the batch deadline: long
// enough to return a message already delivered to the iterator, shorter
// than the gap between arrivals at 10 k events/s, so it takes the backlog
// without waiting for new events.
const bufferedWait = 20 * time.Microsecond

// attemptTimeout bounds one attempt to commit a batch.
const attemptTimeout = 30 * time.Second

// apply decodes a batch, applies it until it is committed, then acks it.
// Attempts run under hard (ctx plus the drain timeout); between attempts
// a cancelled ctx ends the retries.
func (w *worker) apply(ctx, hard context.Context, batch []jetstream.Msg) {
	now := time.Now()
	msgs := make([]projection.Msg, 0, len(batch))
	for _, m := range batch {
		if w.supp.Drop(subjectCustomer(m.Subject())) {
			continue // an erased customer: acked with the batch, never applied nor dead-lettered
		}
		pm, err := decode(m, now)
		if err == nil && w.supp.Drop(pm.CustomerID) {
			continue
		}
		if err != nil {
			class := classInvalid
			if errors.Is(err, touchpoint.ErrMalformed) {
				class = classUndecodable
			}
			w.deadLetter(hard, m, class, err)
			continue
		}
		msgs = append(msgs, pm)
	}
	defer w.hold(w.holding(batch))()
	var rejected []projection.Rejected
	err := retry.Do(ctx, retry.Policy{Initial: 50 * time.Millisecond, Max: w.cfg.MaxBackoff,
		OnRetry: func(_ int, err error, wait time.Duration) {
			w.met.batchErrors.WithLabelValues(errOp(err)).Inc()
			w.log.Warn("batch not committed; retrying", "events", len(msgs), "err", err, "in", wait)
			for _, m := range batch {
				_ = m.InProgress() // hold the redelivery timer while we retry
			}
		}}, func(context.Context) error {
		// Attempts run under hard, not ctx: a started commit may finish
		// during the drain; ctx only ends the waits between attempts.
		actx, cancel := context.WithTimeout(hard, attemptTimeout)
		defer cancel()
		var err error
		rejected, err = w.process(actx, msgs)
		return err
	})
	if err != nil {
		// Shutting down: leave the batch unacknowledged; it is
		// redelivered and re-applied (idempotently) after a restart.
		return
	}
	w.reject(hard, batch, rejected)
	w.settle(batch)
}

// hold sends in-progress acks for the batch every AckWait/4 until the
// returned stop is called, so that a batch that takes longer than AckWait
// to commit (a slow ClickHouse, a large backlog) is not redelivered while
// it is applied. A short AckWait then costs nothing but bounds how long a
// killed projector's events wait.
func (w *worker) hold(batch []jetstream.Msg) (stop func()) {
	return stream.HoldInProgress(batch, w.cfg.AckWait/4)
}

// reject dead-letters the events of customers whose state the store could
// not hold, before the batch is acked: they are kept with the reason, and
// the partition goes on without them.
func (w *worker) reject(ctx context.Context, batch []jetstream.Msg, rejected []projection.Rejected) {
	if len(rejected) == 0 {
		return
	}
	bySeq := make(map[uint64]jetstream.Msg, len(batch))
	for _, m := range batch {
		if md, err := m.Metadata(); err == nil {
			bySeq[md.Sequence.Stream] = m
		}
	}
	for _, r := range rejected {
		w.log.Error("customer state too large; events dead-lettered", "customer", r.CustomerID, "events", len(r.Msgs), "err", r.Err)
		for _, pm := range r.Msgs {
			if m, ok := bySeq[pm.Seq]; ok {
				w.deadLetter(ctx, m, classTooLarge, r.Err)
			}
		}
	}
}

func errOp(err error) string {
	switch {
	case errors.Is(err, errNoWarehouse):
		return "warehouse"
	case errors.Is(err, projection.ErrConflict):
		return "conflict"
	}
	return "write"
}

// subjectCustomer is the customer a stored subject names ("" if none).
func subjectCustomer(subject string) string {
	_, _, key, ok := stream.ParseStoredSubject(subject)
	if !ok {
		return ""
	}
	id, _ := stream.CustomerID(key)
	return id
}

// decode turns a stream message into a projection message.
func decode(m jetstream.Msg, now time.Time) (projection.Msg, error) {
	md, err := m.Metadata()
	if err != nil {
		return projection.Msg{}, err
	}
	e, p, err := decodeEvent(m.Subject(), m.Headers(), m.Data(), now)
	if err != nil {
		return projection.Msg{}, err
	}
	// The customer id outlives the message in the state cache: a copy, so
	// that it does not keep the message's whole header block alive.
	// The event's mark carries no stream sequence: an event is its
	// (source, id), and a second message of it (published without
	// Nats-Msg-Id, or replayed into another stream) must be the same
	// fact, not a later one. Events of one time are ordered by id instead.
	// A replayed copy is ordered by the original's TOUCHPOINTS sequence.
	return projection.Msg{Seq: stream.OriginalSeq(m.Subject(), m.Headers(), md.Sequence.Stream), CustomerID: strings.Clone(e.Subject), Event: journey.FromTouchpoint(&e, &p, 0),
		SurveyID: p.SurveyID, Published: md.Timestamp}, nil
}

// decodeEvent decodes and validates a stored touchpoint and checks that
// its subject says what it says.
func decodeEvent(subject string, h nats.Header, data []byte, now time.Time) (touchpoint.Event, touchpoint.Payload, error) {
	e, err := stream.DecodeMsg(h, data)
	if err != nil {
		return e, touchpoint.Payload{}, err
	}
	p, err := touchpoint.Validate(&e, now)
	if err == nil {
		err = stream.CheckStored(stream.StoredSubject(subject), &e)
	}
	return e, p, err
}

// Dead-letter classes of the projector.
const (
	classInvalid     = "invalid"         // breaks the touchpoint contract
	classUndecodable = "undecodable"     // not a CloudEvent
	classTooLarge    = "state_too_large" // would grow the customer's state past the store's limit
)

func (w *worker) deadLetter(ctx context.Context, m jetstream.Msg, class string, cause error) {
	err := retry.Do(ctx, retry.Policy{Initial: 200 * time.Millisecond, Max: 2 * time.Second,
		OnRetry: func(_ int, err error, _ time.Duration) { w.log.Warn("dead-letter failed; retrying", "err", err) }},
		func(ctx context.Context) error {
			return stream.PublishDeadLetter(ctx, w.js, stream.FromMsg(w.durable, m, class, cause))
		})
	if err == nil {
		w.met.deadLetters.Inc()
		w.log.Warn("dead-lettered", "subject", m.Subject(), "class", class, "err", cause)
	}
}

// sweep advances every due customer, in bounded rounds.
func (w *worker) sweep(ctx, hard context.Context) {
	for ctx.Err() == nil {
		actx, cancel := context.WithTimeout(hard, attemptTimeout)
		n, rejected, err := w.proj.Sweep(actx)
		cancel()
		w.met.swept.Add(float64(n))
		for _, r := range rejected {
			// No event to set aside: the customer keeps its stored state
			// and is swept again after its next event.
			w.log.Error("customer state too large; inactivity not applied", "customer", r.CustomerID, "err", r.Err)
		}
		if err != nil {
			w.met.batchErrors.WithLabelValues("sweep").Inc()
			w.log.Warn("sweep failed; next round retries", "err", err)
			break
		}
		if n == 0 {
			break
		}
	}
	w.met.scheduled.WithLabelValues(partitionLabel(w.part)).Set(float64(w.proj.Scheduled()))
}

func (w *worker) reportLag(ctx context.Context, cons jetstream.Consumer) {
	ops.EveryFromNow(ctx, 2*time.Second, func(ctx context.Context) {
		if info, err := cons.Info(ctx); err == nil {
			w.met.lag.WithLabelValues(partitionLabel(w.part)).Set(float64(info.NumPending + uint64(info.NumAckPending)))
		}
	})
}
