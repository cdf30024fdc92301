package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/ops"
	"github.com/klantreis/journey/pkg/projection"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
)

// Run projects until ctx is cancelled, then finishes the batches in hand
// (bounded by DrainTimeout) and returns nil. It returns an error only for
// a bad configuration or when the ops address cannot be bound. It
// outlives NATS and ClickHouse outages: the connection reconnects forever,
// a batch that cannot be committed is retried with backoff (up to
// RetryMax between attempts) and acknowledged only once its state is
// written, and warehouse rows wait in the outbox while ClickHouse is away.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	parts, err := cfg.Projector.OwnedPartitions(cfg.Stream.Partitions)
	if err != nil {
		return err
	}
	rules, err := journey.New(cfg.Projector.Rules())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if cfg.NATS.Name == "" {
		cfg.NATS.Name = "journey-projector"
	}
	nc, _, err := stream.Connect(cfg.NATS, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	timeout := cfg.NATS.RequestTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	// A batch publishes up to BatchSize states, rows and derived events
	// per partition at once; the default async window (4000) would stall
	// the partitions against each other.
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(timeout),
		jetstream.WithPublishAsyncMaxPending(max(1<<14, 8*cfg.Projector.BatchSize*len(parts))))
	if err != nil {
		return fmt.Errorf("projector: jetstream: %w", err)
	}

	tc, err := cfg.Projector.TLS.Config()
	if err != nil {
		return fmt.Errorf("%w: JOURNEY_PROJECTOR_TLS_*: %w", ErrConfig, err)
	}
	health := ops.NewHealth()
	met := newMetrics(health.Registry)
	wh := &dbHolder{}
	health.AddCheck("nats", func(context.Context) error {
		if st := nc.Status(); st != nats.CONNECTED {
			return fmt.Errorf("nats %s", st)
		}
		return nil
	})
	health.AddCheck("clickhouse", func(ctx context.Context) error {
		db := wh.get()
		if db == nil {
			return errNoWarehouse
		}
		return db.Ping(ctx)
	})
	mux := http.NewServeMux()
	health.Register(mux)
	var wg sync.WaitGroup
	opsErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		opsErr <- ops.ServeTLS(ctx, cfg.Projector.Addr, mux, cfg.Projector.DrainTimeout, log, nil, tc)
	}()

	wg.Add(1)
	go func() {
		defer wg.Done()
		connectWarehouse(ctx, cfg.ClickHouse, wh, cfg.Projector.RetryMax, log)
	}()
	defer func() {
		if db := wh.get(); db != nil {
			db.Close()
		}
	}()

	var stateKV, indexKV jetstream.KeyValue
	setup := func(ctx context.Context) error {
		if err := cfg.Stream.Ensure(ctx, js); err != nil {
			return err
		}
		if stateKV, err = openBucket(ctx, js, cfg.Projector.Bucket, "journey customer states (projector)", cfg.Stream.Replicas); err != nil {
			return err
		}
		indexKV, err = openBucket(ctx, js, cfg.Projector.IndexBucket, "journey inactivity expiry index (projector)", cfg.Stream.Replicas)
		if err != nil {
			return err
		}
		if _, err := js.CreateOrUpdateStream(ctx, outboxConfig(cfg.Projector.OutboxStream, cfg.Stream.Replicas)); err != nil {
			return fmt.Errorf("projector: outbox stream: %w", err)
		}
		return nil
	}
	if err := retry(ctx, log, "setup streams and buckets", cfg.Projector.RetryMax, setup); err != nil {
		wg.Wait()
		return nil // cancelled while waiting for NATS
	}
	store := &kvStore{js: js, kv: stateKV, subject: "$KV." + cfg.Projector.Bucket + ".",
		direct: "$JS.API.DIRECT.GET.KV_" + cfg.Projector.Bucket, timeout: timeout,
		maxValue: maxStateBytes(cfg.Projector.MaxStateBytes, nc)}
	index := &kvIndex{js: js, kv: indexKV, subject: "$KV." + cfg.Projector.IndexBucket + ".", timeout: timeout}
	emitter := &derivedEmitter{js: js, timeout: timeout}
	sink := &outboxSink{js: js, subject: outboxSubject(cfg.Projector.OutboxStream), timeout: timeout,
		maxBytes: bodyLimit(nc)}
	ld := &loader{js: js, stream: cfg.Projector.OutboxStream, durable: cfg.Projector.Durable + "-warehouse", db: wh,
		maxRows: cfg.Projector.WarehouseBatch, maxWait: cfg.Projector.WarehouseWait, retryMax: cfg.Projector.RetryMax, met: met, log: log}
	wg.Add(1)
	go func() {
		defer wg.Done()
		ld.run(ctx)
	}()

	cachePer := max(cfg.Projector.CacheSize/len(parts), 1000)
	log.Info("projector starting", "partitions", parts, "rules_version", rules.Version(), "bucket", cfg.Projector.Bucket)
	for _, p := range parts {
		proj, err := projection.New(projection.Options{Rules: rules, Store: store, Sink: sink, Emitter: emitter, Index: index,
			Partition: p, CacheSize: cachePer, Observer: observer{met}})
		if err != nil {
			return err
		}
		w := &worker{part: p, cfg: cfg.Projector, js: js, proj: proj, index: index, met: met,
			log: log.With("partition", p), durable: fmt.Sprintf("%s-p%d", cfg.Projector.Durable, p)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(ctx)
		}()
	}
	wg.Wait()
	select {
	case err := <-opsErr:
		if err != nil {
			return fmt.Errorf("projector: ops server: %w", err)
		}
	default:
	}
	log.Info("projector stopped")
	return nil
}

// connectWarehouse opens and migrates ClickHouse, retrying until it works
// or ctx ends; the outbox holds the rows until then.
func connectWarehouse(ctx context.Context, c warehouse.Config, wh *dbHolder, retryMax time.Duration, log *slog.Logger) {
	_ = retry(ctx, log, "connect clickhouse", retryMax, func(ctx context.Context) error {
		db, err := warehouse.Open(ctx, c)
		if err != nil {
			return err
		}
		if _, err := db.Migrate(ctx); err != nil {
			db.Close()
			return err
		}
		wh.set(db)
		log.Info("clickhouse connected", "addr", c.Addr, "version", db.Features.Version())
		return nil
	})
}

// retry runs fn until it succeeds or ctx ends, backing off up to maxWait.
func retry(ctx context.Context, log *slog.Logger, what string, maxWait time.Duration, fn func(context.Context) error) error {
	wait := 100 * time.Millisecond
	for {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Warn(what+" failed; retrying", "err", err, "in", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		wait = min(2*wait, maxWait)
	}
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
}

func (w *worker) consumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       w.durable,
		Description:   "journey projector, partition " + partitionLabel(w.part),
		FilterSubject: stream.PartitionFilter(w.part),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       w.cfg.AckWait,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxDeliver:    -1,
		// Bounds what is in flight: the batch being written plus the next.
		MaxAckPending: 3 * w.cfg.BatchSize,
	}
}

func (w *worker) run(ctx context.Context) {
	var cons jetstream.Consumer
	if err := retry(ctx, w.log, "create consumer", w.cfg.RetryMax, func(ctx context.Context) error {
		var err error
		cons, err = w.js.CreateOrUpdateConsumer(ctx, stream.TouchpointStream, w.consumerConfig())
		return err
	}); err != nil {
		return
	}
	if err := retry(ctx, w.log, "load expiry index", w.cfg.RetryMax, func(ctx context.Context) error {
		n, err := w.index.load(ctx, w.part, w.proj.Schedule)
		if err == nil {
			w.log.Info("sweep schedule rebuilt", "customers", n)
		}
		return err
	}); err != nil {
		return
	}
	lagCtx, stopLag := context.WithCancel(ctx)
	defer stopLag()
	go w.reportLag(lagCtx, cons)

	// Writes get a context that outlives ctx by DrainTimeout, so a batch
	// in hand is finished on shutdown instead of being redelivered.
	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHard()
	go func() {
		select {
		case <-ctx.Done():
			select {
			case <-time.After(w.cfg.DrainTimeout):
			case <-hard.Done():
			}
			cancelHard()
		case <-hard.Done():
		}
	}()
	for ctx.Err() == nil {
		it, err := cons.Messages(jetstream.PullMaxMessages(2*w.cfg.BatchSize), jetstream.PullHeartbeat(5*time.Second))
		if err != nil {
			w.log.Warn("consume failed; retrying", "err", err)
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
			}
			continue
		}
		w.loop(ctx, hard, it)
		it.Stop()
	}
}

// loop reads batches until ctx ends or the iterator breaks.
func (w *worker) loop(ctx, hard context.Context, it jetstream.MessagesContext) {
	batch := make([]jetstream.Msg, 0, w.cfg.BatchSize)
	nextSweep := time.Now() // a restart sweeps what expired while it was down
	for ctx.Err() == nil {
		if !time.Now().Before(nextSweep) {
			w.sweep(ctx, hard)
			nextSweep = time.Now().Add(w.cfg.SweepInterval)
		}
		batch = batch[:0]
		m, err := it.Next(jetstream.NextMaxWait(min(time.Second, max(time.Until(nextSweep), time.Millisecond))))
		if err != nil {
			if errors.Is(err, nats.ErrTimeout) {
				continue
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			w.log.Warn("next message", "err", err)
			continue
		}
		batch = append(batch, m)
		// BatchWait bounds the wait for events that have not arrived yet,
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
		deadline := start.Add(w.cfg.BatchWait)
		for len(batch) < w.cfg.BatchSize {
			wait := max(time.Until(deadline), bufferedWait)
			m, err := it.Next(jetstream.NextMaxWait(wait))
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
		w.apply(ctx, hard, batch)
	}
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
		pm, err := decode(m, now)
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
	defer w.hold(batch)()
	wait := 50 * time.Millisecond
	var rejected []projection.Rejected
	for {
		actx, cancel := context.WithTimeout(hard, attemptTimeout)
		var err error
		rejected, err = w.proj.Process(actx, msgs)
		cancel()
		if err == nil {
			break
		}
		w.met.batchErrors.WithLabelValues(errOp(err)).Inc()
		w.log.Warn("batch not committed; retrying", "events", len(msgs), "err", err, "in", wait)
		for _, m := range batch {
			_ = m.InProgress() // hold the redelivery timer while we retry
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			// Shutting down: leave the batch unacknowledged; it is
			// redelivered and re-applied (idempotently) after a restart.
			return
		}
		wait = min(2*wait, w.cfg.RetryMax)
	}
	w.reject(hard, batch, rejected)
	for _, m := range batch {
		_ = m.Ack()
	}
}

// hold sends in-progress acks for the batch every AckWait/4 until the
// returned stop is called, so that a batch that takes longer than AckWait
// to commit (a slow ClickHouse, a large backlog) is not redelivered while
// it is applied. A short AckWait then costs nothing but bounds how long a
// killed projector's events wait.
func (w *worker) hold(batch []jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(w.cfg.AckWait / 4)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				for _, m := range batch {
					_ = m.InProgress()
				}
			}
		}
	}()
	return func() { close(done); <-finished }
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

// decode turns a stream message into a projection message.
func decode(m jetstream.Msg, now time.Time) (projection.Msg, error) {
	md, err := m.Metadata()
	if err != nil {
		return projection.Msg{}, err
	}
	e, err := stream.DecodeMsg(m.Headers(), m.Data())
	if err != nil {
		return projection.Msg{}, err
	}
	p, err := touchpoint.Validate(&e, now)
	if err == nil {
		err = stream.CheckStored(m.Subject(), &e)
	}
	if err != nil {
		return projection.Msg{}, err
	}
	// The customer id outlives the message in the state cache: a copy, so
	// that it does not keep the message's whole header block alive.
	// The event's mark carries no stream sequence: an event is its
	// (source, id), and a second message of it (published without
	// Nats-Msg-Id, or replayed into another stream) must be the same
	// fact, not a later one. Events of one time are ordered by id instead.
	return projection.Msg{Seq: md.Sequence.Stream, CustomerID: strings.Clone(e.Subject), Event: journey.FromTouchpoint(&e, &p, 0),
		SurveyID: p.SurveyID, Published: md.Timestamp}, nil
}

// Dead-letter classes of the projector.
const (
	classInvalid     = "invalid"         // breaks the touchpoint contract
	classUndecodable = "undecodable"     // not a CloudEvent
	classTooLarge    = "state_too_large" // would grow the customer's state past the store's limit
)

func (w *worker) deadLetter(ctx context.Context, m jetstream.Msg, class string, cause error) {
	for ctx.Err() == nil {
		err := stream.PublishDeadLetter(ctx, w.js, stream.FromMsg(w.durable, m, class, cause))
		if err == nil {
			w.met.deadLetters.Inc()
			w.log.Warn("dead-lettered", "subject", m.Subject(), "class", class, "err", cause)
			return
		}
		w.log.Warn("dead-letter failed; retrying", "err", err)
		time.Sleep(200 * time.Millisecond)
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
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		if info, err := cons.Info(ctx); err == nil {
			w.met.lag.WithLabelValues(partitionLabel(w.part)).Set(float64(info.NumPending + uint64(info.NumAckPending)))
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}
