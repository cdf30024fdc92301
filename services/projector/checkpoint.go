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
// then acknowledges every touchpoint the checkpoint covers. It writes in
// the background what was held when it started, while the worker applies
// the next batches on top (reads see both); one is written at a time. A
// crash anywhere in between leaves the touchpoints unacknowledged: they are
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
// a checkpoint writes them. Reads see the held writes first, then those of
// the checkpoint being written (flying), then the bucket. Only the worker's
// goroutine calls its methods; a checkpoint written in the background
// reaches the states it was given (freeze) and the bucket, nothing else.
type ckptStore struct {
	base   *kvStore
	dirty  map[string]ckptEntry
	flying map[string]ckptEntry
}

func newCkptStore(base *kvStore) *ckptStore {
	return &ckptStore{base: base, dirty: make(map[string]ckptEntry)}
}

// Encode refuses a state the store could not hold, as kvStore does.
func (c *ckptStore) Encode(rec *projection.Record) ([]byte, error) { return c.base.Encode(rec) }

// held is a customer's state not yet in the bucket: the newest held one,
// else the one a checkpoint is writing.
func (c *ckptStore) held(customerID string) (ckptEntry, bool) {
	if e, ok := c.dirty[customerID]; ok {
		return e, true
	}
	e, ok := c.flying[customerID]
	return e, ok
}

func (c *ckptStore) Get(ctx context.Context, customerID string) (*projection.Record, uint64, error) {
	if e, ok := c.held(customerID); ok {
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
		e, ok := c.held(id)
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
// which the checkpoint writes with).
func (c *ckptStore) Put(_ context.Context, puts []projection.Put) ([]uint64, error) {
	revs := make([]uint64, len(puts))
	for i, p := range puts {
		if e, ok := c.held(p.CustomerID); ok && e.rev != p.Rev {
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

// freeze hands the held states to a checkpoint. They stay readable (as
// flying) until land; what the batches change meanwhile is held anew, on
// the revisions the flying states were read at.
func (c *ckptStore) freeze() map[string]ckptEntry {
	c.flying, c.dirty = c.dirty, make(map[string]ckptEntry, len(c.dirty))
	return c.flying
}

// land takes back a checkpoint's outcome. A state written moves the held
// one of the same customer onto the new revision, so that the next
// checkpoint's compare-and-set expects what this one wrote. A state that
// lost its compare-and-set is dropped, with any held on top of it (the
// bucket holds another writer's; the events are applied again). A state
// not written is held again unless a newer one is.
func (c *ckptStore) land(gen map[string]ckptEntry, written map[string]uint64, conflicts []string) {
	for _, id := range conflicts {
		delete(gen, id)
		delete(c.dirty, id)
	}
	for id, e := range gen {
		rev, ok := written[id]
		d, newer := c.dirty[id]
		switch {
		case ok && newer && d.rev == e.rev:
			d.rev = rev
			c.dirty[id] = d
		case !ok && !newer:
			c.dirty[id] = e
		}
	}
	c.flying = nil
}

// ckptChunk bounds the states of one batched write.
const ckptChunk = 4096

// writeStates writes a checkpoint's states, each once, and returns the
// new revisions of those written. A lost compare-and-set is returned in
// conflicts; any other failure is an error, and the states not in written
// or conflicts were not written. It reads only gen and the bucket, so it
// may run beside the worker.
func (s *kvStore) writeStates(ctx context.Context, gen map[string]ckptEntry) (written map[string]uint64, conflicts []string, err error) {
	written = make(map[string]uint64, len(gen))
	puts := make([]projection.Put, 0, min(len(gen), ckptChunk))
	for id, e := range gen {
		puts = append(puts, projection.Put{CustomerID: id, Rev: e.rev, Data: e.data})
		if len(puts) == ckptChunk {
			if conflicts, err = s.writeChunk(ctx, puts, written, conflicts); err != nil {
				return written, conflicts, err
			}
			puts = puts[:0]
		}
	}
	if len(puts) > 0 {
		conflicts, err = s.writeChunk(ctx, puts, written, conflicts)
	}
	return written, conflicts, err
}

// writeChunk writes one chunk. When the batched write fails, each state is
// read back to learn whether its write landed (the stored bytes are ours),
// did not (the revision is unchanged) or lost to another writer.
func (s *kvStore) writeChunk(ctx context.Context, puts []projection.Put, written map[string]uint64, conflicts []string) ([]string, error) {
	revs, err := s.Put(ctx, puts)
	if err == nil {
		for i, p := range puts {
			written[p.CustomerID] = revs[i]
		}
		return conflicts, nil
	}
	for _, p := range puts {
		e, gerr := s.kv.Get(ctx, stream.CustomerKey(p.CustomerID))
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
		default:
			conflicts = append(conflicts, p.CustomerID)
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

// indexGen is a checkpoint's index writes, built on the worker from the
// schedule when the checkpoint starts.
type indexGen struct {
	msgs    []*nats.Msg
	shards  map[int]bool
	changed map[string]bool
	spilled map[string]bool
}

// prepare takes the changed shards and builds their messages from the
// schedule as it is now; the index then notes changes anew.
func (x *ckptIndex) prepare() indexGen {
	if len(x.dirty) == 0 {
		return indexGen{}
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
	g := indexGen{msgs: msgs, shards: x.dirty, changed: x.changed, spilled: spilled}
	x.dirty, x.changed = map[int]bool{}, map[string]bool{}
	return g
}

// send publishes a checkpoint's index writes and waits for their acks. It
// touches only g and the bucket, so it may run beside the worker.
func (x *ckptIndex) send(ctx context.Context, g indexGen) error {
	futures := make([]jetstream.PubAckFuture, 0, len(g.msgs))
	for _, m := range g.msgs {
		f, err := x.base.js.PublishMsgAsync(m)
		if err != nil {
			return fmt.Errorf("projector: index %s: %w", m.Subject, err)
		}
		futures = append(futures, f)
	}
	return awaitAcks(ctx, futures, x.base.timeout, "index")
}

// finish takes back the outcome of send: written, the one-customer keys
// are as the messages left them; not written, the shards are changed
// again, to be rebuilt by the next checkpoint.
func (x *ckptIndex) finish(g indexGen, err error) {
	if err != nil {
		for n := range g.shards {
			x.dirty[n] = true
		}
		for id := range g.changed {
			x.changed[id] = true
		}
		return
	}
	for id := range g.changed {
		delete(x.single, id)
	}
	for id := range g.spilled {
		x.single[id] = true
	}
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

// checkpointer is a worker's checkpoint state: the held writes, the
// touchpoints waiting for them, and the checkpoint being written.
type checkpointer struct {
	store    *ckptStore
	index    *ckptIndex
	every    time.Duration
	maxMsgs  int
	pending  []jetstream.Msg
	waiting  prometheus.Gauge // of pending and flying, set by worker.reportWaiting
	next     time.Time        // when the next checkpoint is due
	applied  time.Time        // when the last batch was committed to the held states
	failures int
	// flying is the checkpoint being written in the background, nil when
	// none; its outcome arrives on done. One is written at a time.
	flying *ckptGen
	done   chan ckptResult
	// erased reports erased customers (the suppression list); nil: none.
	erased func(customerID string) bool
	// crash, when set (tests only, SetCheckpointCrash), kills the process
	// after the given checkpoint's writes and before its acks.
	crash *crashAfter
}

// ckptGen is one checkpoint: the states, index writes and touchpoints
// frozen when it started.
type ckptGen struct {
	states  map[string]ckptEntry
	index   indexGen
	pending []jetstream.Msg
	start   time.Time
}

// ckptResult is what writing a ckptGen came to.
type ckptResult struct {
	gen       *ckptGen
	indexErr  error
	written   map[string]uint64
	conflicts []string
	err       error // nil: everything written and the touchpoints acked
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
	return &checkpointer{store: newCkptStore(store), index: x, done: make(chan ckptResult, 1),
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

// until is the time left before the checkpoint is due. While one is
// being written it is short, so that the worker takes its outcome soon.
func (c *checkpointer) until() time.Duration {
	if c.flying != nil {
		return 10 * time.Millisecond
	}
	if len(c.pending) >= c.maxMsgs {
		return 0
	}
	if len(c.pending) > 0 && c.failures == 0 {
		return min(time.Until(c.next), time.Until(c.applied.Add(c.idle())))
	}
	return time.Until(c.next)
}

// due reports whether a checkpoint should be started now.
func (c *checkpointer) due() bool {
	if c.flying != nil {
		return false
	}
	if len(c.pending) == 0 && len(c.store.dirty) == 0 && !c.index.pending() {
		c.next = time.Now().Add(c.every)
		return false
	}
	if c.failures > 0 {
		return !time.Now().Before(c.next)
	}
	return c.until() <= 0 || len(c.store.dirty) >= c.maxMsgs // a large sweep
}

// full reports whether the worker must wait for the checkpoint being
// written before it applies more: a second checkpoint's worth waits.
func (c *checkpointer) full() bool {
	return c.flying != nil && (len(c.pending) >= c.maxMsgs || len(c.store.dirty) >= c.maxMsgs)
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

// checkpoint writes everything held and acks what it covers, waiting for
// the outcome (on shutdown, and when a partition's consumer ends).
func (w *worker) checkpoint(ctx context.Context) {
	w.awaitCheckpoint(true)
	w.startCheckpoint(ctx)
	w.awaitCheckpoint(true)
}

// startCheckpoint freezes the held index entries, states and touchpoints
// and writes them in the background while the worker applies the next
// batches to states held anew. The writes go index first, then states,
// then the acks, as before: a crash anywhere in between leaves the
// touchpoints unacknowledged. Written in line, a checkpoint stopped the
// partition's applying for as long as it wrote (docs/performance.md).
func (w *worker) startCheckpoint(ctx context.Context) {
	c := w.ckpt
	c.dropErased()
	g := &ckptGen{states: c.store.freeze(), index: c.index.prepare(), pending: c.pending, start: time.Now()}
	c.pending = make([]jetstream.Msg, 0, len(g.pending))
	c.flying = g
	go func() { c.done <- w.writeCheckpoint(ctx, g) }()
}

// writeCheckpoint runs beside the worker: it reaches only g, the bucket
// and the touchpoints g holds.
func (w *worker) writeCheckpoint(ctx context.Context, g *ckptGen) ckptResult {
	c := w.ckpt
	stopHold := w.hold(g.pending)
	r := ckptResult{gen: g}
	r.indexErr = c.index.send(ctx, g.index)
	if r.err = r.indexErr; r.err == nil {
		r.written, r.conflicts, r.err = c.store.base.writeStates(ctx, g.states)
	}
	stopHold()
	if r.err != nil {
		return r
	}
	if len(g.states) > 0 {
		c.crash.check()
	}
	for _, m := range g.pending {
		_ = m.Ack()
	}
	return r
}

// awaitCheckpoint takes the outcome of the checkpoint being written, if
// there is one: waiting for it when block is set, else only if it is in.
func (w *worker) awaitCheckpoint(block bool) {
	c := w.ckpt
	if c.flying == nil {
		return
	}
	var r ckptResult
	if block {
		stopHold := w.hold(c.pending) // the next checkpoint's touchpoints wait too
		r = <-c.done
		stopHold()
	} else {
		select {
		case r = <-c.done:
		default:
			return
		}
	}
	w.landCheckpoint(r)
}

// landCheckpoint applies a checkpoint's outcome on the worker. On failure
// its states and touchpoints are held again, for the next attempt after a
// backoff; touchpoints of a customer whose compare-and-set was lost are
// negatively acknowledged, to be applied again to what the store holds.
func (w *worker) landCheckpoint(r ckptResult) {
	c, g := w.ckpt, r.gen
	c.flying = nil
	c.index.finish(g.index, r.indexErr)
	states := len(g.states)
	c.store.land(g.states, r.written, r.conflicts)
	for id, rev := range r.written {
		w.proj.Revised(id, rev)
	}
	if r.err != nil {
		c.pending = append(g.pending, c.pending...)
	}
	if len(r.conflicts) > 0 {
		w.log.Warn("checkpoint lost compare-and-set; their events are applied again", "customers", len(r.conflicts))
		w.proj.Reset()
		w.nakCustomers(r.conflicts)
	}
	if r.err != nil {
		c.failures++
		wait := min(c.every*time.Duration(c.failures), w.cfg.MaxBackoff)
		c.next = time.Now().Add(wait)
		w.met.batchErrors.WithLabelValues("checkpoint").Inc()
		w.log.Warn("checkpoint not written; retrying", "states", states, "events", len(c.pending), "err", r.err, "in", wait)
		w.reportWaiting()
		return
	}
	w.log.Debug("checkpoint", "states", states, "events", len(g.pending), "took", time.Since(g.start))
	c.failures = 0
	c.next = time.Now().Add(c.every)
	w.reportWaiting()
}

// reportWaiting sets the gauge of touchpoints waiting for a checkpoint,
// held or being written (looked up once per worker: it is set after
// every batch).
func (w *worker) reportWaiting() {
	if w.ckpt.waiting == nil {
		w.ckpt.waiting = w.met.waiting.WithLabelValues(partitionLabel(w.part))
	}
	n := len(w.ckpt.pending)
	if w.ckpt.flying != nil {
		n += len(w.ckpt.flying.pending)
	}
	w.ckpt.waiting.Set(float64(n))
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
// the touchpoints of the checkpoint being written and of the next one,
// plus the batch in hand and the pull buffer.
func ckptMaxAckPending(s Settings) int { return 2*s.CheckpointEvents + 3*s.BatchSize }

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
