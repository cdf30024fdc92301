package projector

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/projection"
	"github.com/klantreis/journey/pkg/ruleset"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/suppression"
	"github.com/klantreis/journey/pkg/touchpoint"
)

// followRules runs the workers for the live rules version (pkg/ruleset)
// and moves them when `journeyctl rederive switch` or `rollback` moves the
// pointer. A move first prepares the new version (its rulebook, its
// buckets, one of its consumers) while the old one keeps running; only
// then are the old version's workers stopped (they finish their batches)
// and the new one's started, on the consumers the re-derive left at the
// stream position it reached. A version that cannot be prepared within
// prepareTimeout (a NATS user without the permissions for its buckets or
// consumers, say) is not moved to: the old one goes on, and the instance's
// report names the error. Without the JOURNEY_OPS bucket (a NATS user
// that may not create it) the base version runs. It returns when ctx ends,
// or run's error.
//
// A version started after another (on a move, or at start after a switch,
// from the pointer's previous) gets that version as prev, whose
// consumers' ack floors say which events it applied live: the new one
// applies those quietly (no derived events), so each event's derived
// events come from one version only. Each instance reports the version it
// runs under rules.running.<id> ([ruleset.Store.SetRunning]), which
// `rederive switch` waits for.
func followRules(ctx context.Context, js jetstream.JetStream, cfg Config, log *slog.Logger,
	prepare func(context.Context, ruleset.Version) (*preparedVersion, error),
	run func(context.Context, *preparedVersion, *ruleset.Version) error) error {
	type move struct {
		v    ruleset.Version
		prev string
	}
	versions := make(chan move, 1)
	ops, err := ruleset.Open(ctx, js, cfg.Stream.Replicas)
	if err != nil {
		log.Warn("cannot follow the live rules version; running the configured rules", "err", err)
		versions <- move{v: ruleset.Version{Name: ruleset.Base}}
	} else {
		go ops.Follow(ctx, log, func(v ruleset.Version, prev string) {
			select { // keep only the newest
			case <-versions:
			default:
			}
			versions <- move{v, prev}
		})
	}
	instance := cfg.NATS.Name + "-" + randomID()
	report := func(version string, err error) {
		if ops == nil {
			return
		}
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if err := ops.SetRunningError(ctx, instance, version, msg); err != nil {
			log.Warn("cannot report the rules version this projector runs", "err", err)
		}
	}
	if ops != nil {
		defer func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			_ = ops.ClearRunning(dctx, instance)
		}()
	}
	var cur *preparedVersion
	var prev *ruleset.Version
	var curErr error
	select {
	case m := <-versions:
		if cur, curErr = prepareWithin(ctx, prepare, m.v); curErr != nil {
			// The live version cannot run here: the base can (its buckets
			// are the setup's), and the report says why.
			log.Error("cannot run the live rules version; running the base", "version", m.v.Name, "err", curErr)
			if cur, err = prepare(ctx, ruleset.Version{Name: ruleset.Base}); err != nil {
				return nil // stopped
			}
		} else if m.prev != "" {
			// Started after a switch (this instance was down for it, or is
			// new): the version live before may have applied events this
			// one has not; they are applied quietly like on a move.
			prev = &ruleset.Version{Name: m.prev}
		}
	case <-ctx.Done():
		return nil
	}
	for {
		vctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func(p *preparedVersion, prev *ruleset.Version) { done <- run(vctx, p, prev) }(cur, prev)
		report(cur.v.Name, curErr)
	wait:
		select {
		case err := <-done:
			stop()
			return err // ctx ended, or the version failed for good
		case m := <-versions:
			next, err := prepareWithin(ctx, prepare, m.v)
			if err != nil {
				if ctx.Err() != nil {
					stop()
					return <-done
				}
				log.Error("cannot move to the rules version; the current one goes on", "from", cur.v.Name, "to", m.v.Name, "err", err)
				report(cur.v.Name, fmt.Errorf("cannot run %s: %w", m.v.Name, err))
				goto wait
			}
			stop()
			if err := <-done; err != nil {
				return err
			}
			log.Info("rules version moved", "from", cur.v.Name, "to", next.v.Name)
			old := cur.v
			prev, cur, curErr = &old, next, nil
		case <-ctx.Done():
			stop()
			return <-done
		}
	}
}

// prepareTimeout bounds the preparation of a version to move to.
const prepareTimeout = 15 * time.Second

func prepareWithin(ctx context.Context, prepare func(context.Context, ruleset.Version) (*preparedVersion, error), v ruleset.Version) (*preparedVersion, error) {
	pctx, cancel := context.WithTimeout(ctx, prepareTimeout)
	defer cancel()
	p, err := prepare(pctx, v)
	if err == nil && p == nil {
		err = fmt.Errorf("rules version %s not ready within %s", v.Name, prepareTimeout)
	}
	return p, err
}

// preparedVersion is a version's rulebook and opened buckets.
type preparedVersion struct {
	v                   ruleset.Version
	rules               *journey.Rulebook
	bucket, indexBucket string
	stateKV, indexKV    jetstream.KeyValue
}

// prepareVersion compiles v's rules and opens its buckets (the base's are
// the setup's, stateKV and indexKV), and creates one of its consumers, so
// that a missing permission shows before the old version is stopped. It
// retries until ctx ends, then returns nil and the last error.
func (s *service) prepareVersion(ctx context.Context, v ruleset.Version, stateKV, indexKV jetstream.KeyValue) (*preparedVersion, error) {
	set := s.cfg.Projector
	p := &preparedVersion{v: v, rules: s.rules, bucket: set.Bucket, indexBucket: set.IndexBucket, stateKV: stateKV, indexKV: indexKV}
	if v.IsBase() {
		return p, nil
	}
	var err error
	if p.rules, err = journey.NewRulebook(v.Rules); err != nil {
		return nil, fmt.Errorf("%w: rules version %s: %w", ErrConfig, v.Name, err)
	}
	p.bucket, p.indexBucket = v.Bucket(set.Bucket), v.Bucket(set.IndexBucket)
	part := 0
	if len(s.parts) > 0 && !set.Grouped() {
		part = s.parts[0]
	}
	var last error
	err = keepTrying(ctx, s.log, "prepare rules version "+v.Name, set.MaxBackoff, func(ctx context.Context) error {
		if p.stateKV, last = openBucket(ctx, s.js, p.bucket, "journey customer states (projector)", s.cfg.Stream.Replicas); last != nil {
			return last
		}
		if p.indexKV, last = openBucket(ctx, s.js, p.indexBucket, "journey inactivity expiry index (projector)", s.cfg.Stream.Replicas); last != nil {
			return last
		}
		_, last = s.js.CreateOrUpdateConsumer(ctx, stream.TouchpointStream,
			stream.ProjectorPartitionConsumerConfig(v.Durable(set.Durable), part, set.AckWait, set.BatchSize))
		return last
	})
	if err != nil {
		if last == nil {
			last = err
		}
		return nil, last
	}
	return p, nil
}

// runVersion runs the owned partitions' workers (or the partition group)
// for a prepared version until ctx ends; prev is the version before it,
// whose live events its workers apply quietly (followRules).
func (s *service) runVersion(ctx context.Context, pv *preparedVersion, prev *ruleset.Version,
	supp *suppression.Guard, accounts *accountService, met *metrics, reg prometheus.Registerer) error {
	cfg, js, log := s.cfg, s.js, s.log
	set, v, rules, bucket := cfg.Projector, pv.v, pv.rules, pv.bucket
	store := &kvStore{js: js, kv: pv.stateKV, subject: stream.KVKeyPrefix(bucket), direct: stream.KVDirectGet(bucket),
		timeout: s.timeout, maxValue: maxStateBytes(set.MaxStateBytes, s.nc)}
	index := &kvIndex{js: js, kv: pv.indexKV, subject: stream.KVKeyPrefix(pv.indexBucket), timeout: s.timeout, maxValue: bodyLimit(s.nc)}
	emitter := &derivedEmitter{js: js, timeout: s.timeout, rules: v.Name}
	sink := &outboxSink{js: js, subject: outboxSubject(set.OutboxStream), timeout: s.timeout,
		maxBytes: bodyLimit(s.nc), tables: v.TableSuffix()}
	wset := set // the workers' consumers are the version's
	wset.Durable = v.Durable(set.Durable)
	// newWorker gives partition p a worker with a projector (cache and
	// schedule) of its own: a group member that owns p again starts cold.
	newWorker := func(p, owned int) (*worker, error) {
		// Read when the worker starts, after the partition's previous
		// worker (here, or in a group on another member) stopped.
		quiet := &quietUpTo{Emitter: emitter, seq: ackFloor(ctx, js, cfg, prev, p, log)}
		var wstore projection.Store = store
		var windex projection.Index = index
		var ckpt *checkpointer
		if set.Checkpoint > 0 {
			ckpt = newCheckpointer(store, index, p, set, supp.Has, log.With("partition", p))
			wstore, windex = ckpt.store, ckpt.index
		}
		proj, err := projection.New(projection.Options{Rules: rules, Store: wstore, Sink: sink, Emitter: quiet, Index: windex,
			Partition: p, CacheSize: max(set.CacheSize/max(owned, 1), 1000), Observer: observer{met}, Erased: supp.Has,
			History: &streamHistory{js: js, timeout: s.timeout}, Accounts: accounts.hook()})
		if err != nil {
			return nil, err
		}
		if ckpt != nil {
			ckpt.index.each = proj.EachScheduled
		}
		return &worker{part: p, cfg: wset, js: js, proj: proj, index: index, met: met, supp: supp, quiet: quiet, ckpt: ckpt,
			log: log.With("partition", p, "rules", v.Name), durable: stream.ProjectorPartitionDurable(v.Durable(set.Durable), p)}, nil
	}
	log.Info("projector starting", "partitions", set.Partitions, "rules", v.Name, "rules_version", rules.Version(), "bucket", bucket)
	if g := rulesGauge(reg); g != nil {
		g.Reset()
		g.WithLabelValues(v.Name).Set(1)
	}
	if set.Grouped() {
		runGroup(ctx, js, cfg, newWorker, reg, log)
		return nil
	}
	workers := make([]*worker, 0, len(s.parts))
	for _, p := range s.parts {
		w, err := newWorker(p, len(s.parts))
		if err != nil {
			return err
		}
		workers = append(workers, w)
	}
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(ctx)
		}()
	}
	wg.Wait()
	return nil
}

// ackFloor returns the stream sequence up to which prev's consumer of
// partition p acknowledged every event: what prev applied (and emitted the
// derived events of) while it was live. 0 without prev; also 0 when the
// consumer cannot be read (its events are emitted again, and the stream's
// duplicate window drops the repeats it still covers).
func ackFloor(ctx context.Context, js jetstream.JetStream, cfg Config, prev *ruleset.Version, p int, log *slog.Logger) uint64 {
	if prev == nil {
		return 0
	}
	durable := stream.ProjectorPartitionDurable(prev.Durable(cfg.Projector.Durable), p)
	c, err := js.Consumer(ctx, stream.TouchpointStream, durable)
	if err == nil {
		var info *jetstream.ConsumerInfo
		if info, err = c.Info(ctx); err == nil {
			return info.AckFloor.Stream
		}
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		log.Warn("ack floor of the previous rules version unknown; its derived events may repeat", "consumer", durable, "err", err)
	}
	return 0
}

// quietUpTo is a worker's Emitter: it drops the derived events of batches
// whose events the previous rules version applied live, up to seq.
type quietUpTo struct {
	projection.Emitter
	seq   uint64
	muted bool // set by worker.process around a quiet batch
}

func (q *quietUpTo) Emit(ctx context.Context, events []touchpoint.Event) error {
	if q.muted {
		return nil
	}
	return q.Emitter.Emit(ctx, events)
}

// process applies msgs, those up to the quiet sequence first and without
// derived events. Retrying it after an error is safe: what was applied is
// a no-op the second time.
func (w *worker) process(ctx context.Context, msgs []projection.Msg) ([]projection.Rejected, error) {
	q := w.quiet
	if q == nil || q.seq == 0 {
		return w.proj.Process(ctx, msgs)
	}
	var quiet, loud []projection.Msg
	for _, m := range msgs {
		if m.Seq <= q.seq {
			quiet = append(quiet, m)
		} else {
			loud = append(loud, m)
		}
	}
	q.muted = true
	rq, err := w.proj.Process(ctx, quiet)
	q.muted = false
	if err != nil {
		return nil, err
	}
	rl, err := w.proj.Process(ctx, loud)
	if err != nil {
		return nil, err
	}
	if len(loud) > 0 {
		q.seq = 0 // past the floor: every later event is this version's news
	}
	return append(rq, rl...), nil
}

func randomID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// rulesGauge is journey_projector_rules_version{version}: 1 for the
// version the workers run. Registered once; nil without a registry.
func rulesGauge(reg prometheus.Registerer) *prometheus.GaugeVec {
	if reg == nil {
		return nil
	}
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "journey_projector_rules_version",
		Help: "1 for the rules version the projector runs (journeyctl rederive)."}, []string{"version"})
	if err := reg.Register(g); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(*prometheus.GaugeVec); ok {
				return old
			}
		}
		return nil
	}
	return g
}
