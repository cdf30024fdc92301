package projector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/klantreis/journey/pkg/expiryindex"
	"github.com/klantreis/journey/pkg/projection"
	"github.com/klantreis/journey/pkg/stream"
)

// Checkpoint mode (JOURNEY_PROJECTOR_CHECKPOINT > 0). A partition's worker
// applies its batches to states held in memory (ckptStore) and writes
// nothing of a state per batch; the touchpoints stay unacknowledged. Every
// Checkpoint interval, or once CheckpointEvents touchpoints wait, it
// writes the expiry index entries the batches changed, then each changed
// customer's state once (compare-and-set on the revision the store held),
// then acknowledges every touchpoint the checkpoint covers. A crash
// anywhere in between leaves the touchpoints unacknowledged: they are
// redelivered and re-applied to the last stored state, and applying an
// event the state already holds changes nothing, so the state comes out
// the same as an uninterrupted run's. Warehouse rows and derived events
// are still written per batch, before the state (as without checkpoints):
// a re-applied change produces the same rows (idempotent inserts) and the
// same derived event ids, which the DERIVED stream's duplicate window
// drops (Nats-Msg-Id).

// ckptEntry is a customer's state changed since the last checkpoint:
// encoded (a copy, so that a batch that fails half-way through cannot
// change what the checkpoint writes) with the revision the store holds.
type ckptEntry struct {
	data []byte
	rev  uint64
}

// ckptStore is a projection.Store that keeps the writes in memory until
// flush. Reads see the held writes first. One worker's goroutine uses it.
type ckptStore struct {
	base  *kvStore
	dirty map[string]ckptEntry
}

func newCkptStore(base *kvStore) *ckptStore {
	return &ckptStore{base: base, dirty: make(map[string]ckptEntry)}
}

// Encode refuses a state the store could not hold, as kvStore does.
func (c *ckptStore) Encode(rec *projection.Record) ([]byte, error) { return c.base.Encode(rec) }

func (c *ckptStore) Get(ctx context.Context, customerID string) (*projection.Record, uint64, error) {
	if e, ok := c.dirty[customerID]; ok {
		rec, err := projection.DecodeRecord(e.data)
		if err != nil {
			return nil, 0, fmt.Errorf("projector: decode held state of %q: %w", customerID, err)
		}
		return rec, e.rev, nil
	}
	return c.base.Get(ctx, customerID)
}

func (c *ckptStore) GetMany(ctx context.Context, ids []string) (map[string]projection.Got, []string, error) {
	var ask []string
	found := make(map[string]projection.Got, len(ids))
	for _, id := range ids {
		e, ok := c.dirty[id]
		if !ok {
			ask = append(ask, id)
			continue
		}
		rec, err := projection.DecodeRecord(e.data)
		if err != nil {
			return nil, nil, fmt.Errorf("projector: decode held state of %q: %w", id, err)
		}
		found[id] = projection.Got{Record: rec, Rev: e.rev}
	}
	if len(ask) == 0 {
		return found, nil, nil
	}
	got, missing, err := c.base.GetMany(ctx, ask)
	if err != nil {
		return nil, nil, err
	}
	for id, g := range got {
		found[id] = g
	}
	return found, missing, nil
}

// Put holds the records until the next checkpoint and returns the
// revisions the store still has (the projector's compare-and-set basis,
// which flush uses).
func (c *ckptStore) Put(_ context.Context, puts []projection.Put) ([]uint64, error) {
	revs := make([]uint64, len(puts))
	for i, p := range puts {
		if e, ok := c.dirty[p.CustomerID]; ok && e.rev != p.Rev {
			return nil, fmt.Errorf("%w: %q: held at revision %d, written at %d", projection.ErrConflict, p.CustomerID, e.rev, p.Rev)
		}
		raw := p.Data
		if raw == nil {
			var err error
			if raw, err = c.base.encode(p.Record); err != nil {
				return nil, fmt.Errorf("projector: put %q: %w", p.CustomerID, err)
			}
		}
		c.dirty[p.CustomerID] = ckptEntry{data: raw, rev: p.Rev}
		revs[i] = p.Rev
	}
	return revs, nil
}

// ckptChunk bounds the states of one batched write.
const ckptChunk = 4096

// flush writes every held state once and returns the new revisions of
// those written. States written are no longer held. A lost
// compare-and-set is returned in conflicts (their states are dropped:
// the store holds another writer's); any other failure is an error, and
// what was not written stays held for the next attempt.
func (c *ckptStore) flush(ctx context.Context) (written map[string]uint64, conflicts []string, err error) {
	written = make(map[string]uint64, len(c.dirty))
	puts := make([]projection.Put, 0, min(len(c.dirty), ckptChunk))
	for id, e := range c.dirty {
		puts = append(puts, projection.Put{CustomerID: id, Rev: e.rev, Data: e.data})
		if len(puts) == ckptChunk {
			if conflicts, err = c.put(ctx, puts, written, conflicts); err != nil {
				return written, conflicts, err
			}
			puts = puts[:0]
		}
	}
	if len(puts) > 0 {
		conflicts, err = c.put(ctx, puts, written, conflicts)
	}
	return written, conflicts, err
}

// put writes one chunk. When the batched write fails, each state is read
// back to learn whether its write landed (the stored bytes are ours), did
// not (the revision is unchanged) or lost to another writer.
func (c *ckptStore) put(ctx context.Context, puts []projection.Put, written map[string]uint64, conflicts []string) ([]string, error) {
	revs, err := c.base.Put(ctx, puts)
	if err == nil {
		for i, p := range puts {
			written[p.CustomerID] = revs[i]
			delete(c.dirty, p.CustomerID)
		}
		return conflicts, nil
	}
	for _, p := range puts {
		e, gerr := c.base.kv.Get(ctx, stream.CustomerKey(p.CustomerID))
		var rev uint64
		var data []byte
		switch {
		case errors.Is(gerr, jetstream.ErrKeyNotFound) || errors.Is(gerr, jetstream.ErrKeyDeleted):
		case gerr != nil:
			return conflicts, fmt.Errorf("projector: checkpoint: %w (and reading back %q: %w)", err, p.CustomerID, gerr)
		default:
			rev, data = e.Revision(), e.Value()
		}
		switch {
		case rev == p.Rev: // not written: held for the next attempt
		case bytes.Equal(data, p.Data):
			written[p.CustomerID] = rev
			delete(c.dirty, p.CustomerID)
		default:
			conflicts = append(conflicts, p.CustomerID)
			delete(c.dirty, p.CustomerID)
		}
	}
	return conflicts, fmt.Errorf("projector: checkpoint: %w", err)
}

// ckptIndex folds the expiry index into the checkpoint: Set only notes
// which shards (pkg/expiryindex) the batches changed, and the checkpoint
// rewrites each of them once from the projector's schedule, one message
// per shard, instead of one per changed customer. A customer that still
// has a one-customer key (written without checkpoints) gets it deleted
// when it changes, so that the key cannot bring back an old expiry.
type ckptIndex struct {
	base   *kvIndex
	part   int
	shards int
	dirty  map[int]bool
	// changed are the customers Set named since the last checkpoint (an
	// over-full shard writes them one key each).
	changed map[string]bool
	// single are the customers with a one-customer key.
	single map[string]bool
	// each lists the schedule (projection.Projector.EachScheduled).
	each func(fn func(customerID string, at time.Time))
	// erased reports erased customers; nil: none.
	erased func(customerID string) bool
	log    *slog.Logger
	warned bool
}

func (x *ckptIndex) Set(_ context.Context, entries []projection.Expiry) error {
	for _, e := range entries {
		x.dirty[expiryindex.ShardOf(e.CustomerID, x.shards)] = true
		x.changed[e.CustomerID] = true
	}
	return nil
}

// maxBytes bounds a shard's value.
func (x *ckptIndex) maxBytes() int {
	if x.base.maxValue > 0 {
		return x.base.maxValue
	}
	return 1<<20 - 4<<10
}

// pending reports whether the checkpoint has index writes to do.
func (x *ckptIndex) pending() bool { return len(x.dirty) > 0 }

// flush writes the changed shards, and the one-customer keys to delete.
func (x *ckptIndex) flush(ctx context.Context) error {
	if len(x.dirty) == 0 {
		return nil
	}
	byShard := make(map[int]map[string]time.Time, len(x.dirty))
	for n := range x.dirty {
		byShard[n] = map[string]time.Time{}
	}
	x.each(func(id string, at time.Time) {
		if m, ok := byShard[expiryindex.ShardOf(id, x.shards)]; ok && (x.erased == nil || !x.erased(id)) {
			m[id] = at
		}
	})
	msgs, spilled := x.messages(byShard)
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, m := range msgs {
		f, err := x.base.js.PublishMsgAsync(m)
		if err != nil {
			return fmt.Errorf("projector: index %s: %w", m.Subject, err)
		}
		futures = append(futures, f)
	}
	if err := awaitAcks(ctx, futures, x.base.timeout, "index"); err != nil {
		return err
	}
	for id := range x.changed {
		delete(x.single, id)
	}
	for id := range spilled {
		x.single[id] = true
	}
	clear(x.dirty)
	clear(x.changed)
	return nil
}

// messages are a checkpoint's index writes: each changed shard (deleted
// when empty), the one-customer keys of changed customers that have one
// (deleted), and for a shard too large for one message its changed
// customers one key each (returned in spilled).
func (x *ckptIndex) messages(byShard map[int]map[string]time.Time) (msgs []*nats.Msg, spilled map[string]bool) {
	spilled = map[string]bool{}
	for n, m := range byShard {
		v := expiryindex.Encode(m)
		if len(v) <= x.maxBytes() {
			if len(m) == 0 {
				v = nil // no customer left: delete the shard
			}
			msgs = append(msgs, x.base.msg(expiryindex.ShardKey(x.part, n), v))
			continue
		}
		if !x.warned {
			x.warned = true
			x.log.Warn("projector: an expiry index shard is larger than a message; its changed customers are written one key each "+
				"(raise JOURNEY_PROJECTOR_INDEX_SHARDS)", "partition", x.part, "customers", len(m), "bytes", len(v), "max", x.maxBytes())
		}
		for id := range x.changed {
			if expiryindex.ShardOf(id, x.shards) != n {
				continue
			}
			msgs = append(msgs, x.base.msg(expiryindex.CustomerKey(x.part, id), customerValue(m[id])))
			spilled[id] = true
		}
	}
	for id := range x.changed {
		if x.single[id] && !spilled[id] {
			msgs = append(msgs, x.base.msg(expiryindex.CustomerKey(x.part, id), nil))
		}
	}
	return msgs, spilled
}

// checkpointer is a worker's checkpoint state: the held writes and the
// touchpoints waiting for them.
type checkpointer struct {
	store    *ckptStore
	index    *ckptIndex
	every    time.Duration
	maxMsgs  int
	pending  []jetstream.Msg
	waiting  prometheus.Gauge // of pending, set by worker.reportWaiting
	next     time.Time        // when the next checkpoint is due
	applied  time.Time        // when the last batch was committed to the held states
	failures int
	// erased reports erased customers (the suppression list); nil: none.
	erased func(customerID string) bool
	// crash, when set (tests only, SetCheckpointCrash), kills the process
	// after the given checkpoint's writes and before its acks.
	crash *crashAfter
}

// crashAfter counts the checkpoints that wrote states in a process and
// SIGKILLs it after the writes of number n, before their acks.
type crashAfter struct {
	n     int64
	count atomic.Int64
}

func (c *crashAfter) check() {
	if c != nil && c.count.Add(1) == c.n {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way; ack nothing
	}
}

// newCheckpointer is partition part's checkpointer. Its index lists the
// schedule through each, which the worker sets once its projector exists.
func newCheckpointer(store *kvStore, index *kvIndex, part int, s Settings, erased func(string) bool, log *slog.Logger) *checkpointer {
	x := &ckptIndex{base: index, part: part, shards: max(s.IndexShards, 1), dirty: map[int]bool{},
		changed: map[string]bool{}, single: map[string]bool{}, erased: erased, log: log}
	return &checkpointer{store: newCkptStore(store), index: x,
		every: s.Checkpoint, maxMsgs: s.CheckpointEvents, next: time.Now().Add(s.Checkpoint), crash: s.ckptCrash, erased: erased}
}

// idle is how long a partition with touchpoints waiting receives nothing
// more before it writes their checkpoint early: the end of a burst or a
// backlog is stored and acknowledged at once instead of after the rest of
// the interval, while live traffic (a batch every few milliseconds) still
// coalesces a whole interval. It is a fiftieth of the interval, at least
// 100 ms: with 100 ms alone, a 30 s checkpoint under traffic that arrives
// in 100 ms steps wrote every few seconds (docs/perf-projector.md).
func (c *checkpointer) idle() time.Duration { return max(100*time.Millisecond, c.every/50) }

// until is the time left before the checkpoint is due.
func (c *checkpointer) until() time.Duration {
	if len(c.pending) >= c.maxMsgs {
		return 0
	}
	if len(c.pending) > 0 && c.failures == 0 {
		return min(time.Until(c.next), time.Until(c.applied.Add(c.idle())))
	}
	return time.Until(c.next)
}

// due reports whether a checkpoint should be written now.
func (c *checkpointer) due() bool {
	if len(c.pending) == 0 && len(c.store.dirty) == 0 && !c.index.pending() {
		c.next = time.Now().Add(c.every)
		return false
	}
	if c.failures > 0 {
		return !time.Now().Before(c.next)
	}
	return c.until() <= 0 || len(c.store.dirty) >= c.maxMsgs // a large sweep
}

// dropErased forgets the held states of erased customers: a checkpoint
// must not write them back (the index leaves them out itself).
func (c *checkpointer) dropErased() {
	if c.erased == nil {
		return
	}
	for id := range c.store.dirty {
		if c.erased(id) {
			delete(c.store.dirty, id)
		}
	}
}

// checkpoint writes the held index entries and states, then acks what
// they cover. On failure everything stays held and the next attempt comes
// after a backoff; touchpoints of a customer whose compare-and-set was
// lost are negatively acknowledged, to be applied again to what the store
// holds.
func (w *worker) checkpoint(ctx context.Context) {
	c := w.ckpt
	c.dropErased()
	stopHold := w.hold(c.pending)
	start := time.Now()
	states := len(c.store.dirty)
	err := c.index.flush(ctx)
	var written map[string]uint64
	var conflicts []string
	if err == nil {
		written, conflicts, err = c.store.flush(ctx)
		for id, rev := range written {
			w.proj.Revised(id, rev)
		}
	}
	stopHold()
	if len(conflicts) > 0 {
		w.log.Warn("checkpoint lost compare-and-set; their events are applied again", "customers", len(conflicts))
		w.proj.Reset()
		w.nakCustomers(conflicts)
	}
	if err != nil {
		c.failures++
		wait := min(c.every*time.Duration(c.failures), w.cfg.MaxBackoff)
		c.next = time.Now().Add(wait)
		w.met.batchErrors.WithLabelValues("checkpoint").Inc()
		w.log.Warn("checkpoint not written; retrying", "states", states, "events", len(c.pending), "err", err, "in", wait)
		w.reportWaiting()
		return
	}
	if states > 0 {
		c.crash.check()
	}
	for _, m := range c.pending {
		_ = m.Ack()
	}
	w.log.Debug("checkpoint", "states", states, "events", len(c.pending), "took", time.Since(start))
	clear(c.pending)
	c.pending = c.pending[:0]
	c.failures = 0
	c.next = time.Now().Add(c.every)
	w.reportWaiting()
}

// reportWaiting sets the gauge of touchpoints waiting for a checkpoint
// (looked up once per worker: it is set after every batch).
func (w *worker) reportWaiting() {
	if w.ckpt.waiting == nil {
		w.ckpt.waiting = w.met.waiting.WithLabelValues(partitionLabel(w.part))
	}
	w.ckpt.waiting.Set(float64(len(w.ckpt.pending)))
}

// nakCustomers takes the touchpoints of customers out of the checkpoint
// and asks for their redelivery.
func (w *worker) nakCustomers(ids []string) {
	drop := make(map[string]bool, len(ids))
	for _, id := range ids {
		drop[id] = true
	}
	kept := w.ckpt.pending[:0]
	for _, m := range w.ckpt.pending {
		if drop[subjectCustomer(m.Subject())] {
			_ = m.Nak()
			continue
		}
		kept = append(kept, m)
	}
	w.ckpt.pending = kept
	w.reportWaiting()
}

// holding is what apply keeps from redelivery while it works: the batch,
// and in checkpoint mode the touchpoints waiting for the checkpoint.
func (w *worker) holding(batch []jetstream.Msg) []jetstream.Msg {
	if w.ckpt == nil || len(w.ckpt.pending) == 0 {
		return batch
	}
	return append(append(make([]jetstream.Msg, 0, len(batch)+len(w.ckpt.pending)), batch...), w.ckpt.pending...)
}

// settle acks a committed batch, or in checkpoint mode leaves it for the
// checkpoint that writes its states.
func (w *worker) settle(batch []jetstream.Msg) {
	if w.ckpt != nil {
		w.ckpt.pending = append(w.ckpt.pending, batch...)
		w.ckpt.applied = time.Now()
		w.reportWaiting()
		return
	}
	for _, m := range batch {
		_ = m.Ack()
	}
}

// ckptMaxAckPending is the consumer's MaxAckPending in checkpoint mode:
// a checkpoint's touchpoints plus the batch in hand and the pull buffer.
func ckptMaxAckPending(s Settings) int { return s.CheckpointEvents + 3*s.BatchSize }

// validateCheckpoint checks the checkpoint settings against AckWait.
func (s Settings) validateCheckpoint() error {
	switch {
	case s.Checkpoint < 0:
		return fmt.Errorf("%w: JOURNEY_PROJECTOR_CHECKPOINT must be 0 (off) or positive, got %s", ErrConfig, s.Checkpoint)
	case s.Checkpoint == 0:
		return nil
	case s.IndexShards < 1 || s.IndexShards > 4096:
		return fmt.Errorf("%w: JOURNEY_PROJECTOR_INDEX_SHARDS must be 1..4096, got %d", ErrConfig, s.IndexShards)
	case s.CheckpointEvents < 1:
		return fmt.Errorf("%w: JOURNEY_PROJECTOR_CHECKPOINT_EVENTS must be positive, got %d", ErrConfig, s.CheckpointEvents)
	case s.AckWait < 2*s.Checkpoint:
		return fmt.Errorf("%w: JOURNEY_PROJECTOR_ACK_WAIT (%s) must be at least twice JOURNEY_PROJECTOR_CHECKPOINT (%s): "+
			"touchpoints wait unacknowledged for a checkpoint", ErrConfig, s.AckWait, s.Checkpoint)
	}
	return nil
}
