package writer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/retry"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/suppression"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
)

// store is what the pipeline needs of ClickHouse (*warehouse.DB).
type store interface {
	InsertEvents(ctx context.Context, rows []warehouse.EventRow) error
	IndexIdentities(ctx context.Context, rows []warehouse.EventRow) error
	StoredVersions(ctx context.Context, hashes []uint64) (map[warehouse.Identity]touchpoint.Version, error)
	InsertDead(ctx context.Context, rows []warehouse.DeadRow) error
	ExistingDeadSeqs(ctx context.Context, consumer string, seqs []uint64) (map[uint64]bool, error)
	CheckEventRow(r *warehouse.EventRow) error
	Running(ctx context.Context, queryID string) (bool, error)
	RunningWithPrefix(ctx context.Context, prefix string) (uint64, error)
}

// fetcher is the part of jetstream.Consumer the reader uses.
type fetcher interface {
	Fetch(batch int, opts ...jetstream.FetchOpt) (jetstream.MessageBatch, error)
}

// Reasons a message is dead-lettered (the error_class column and the
// dead_lettered_total label).
const (
	reasonDecode      = "decode"       // not a CloudEvent (bad JSON, wrong shape)
	reasonUnknownType = "unknown_type" // not one of journey's types
	reasonInvalid     = "invalid"      // breaks the contract (touchpoint.Validate)
	reasonRejected    = "rejected"     // ClickHouse refused the row
	reasonConflict    = "conflict"     // (source, id) stored with other content at this revision
)

type item struct {
	msg       jetstream.Msg
	seq       uint64
	delivered uint64
	stamp     time.Time // when the stream stored the message
	size      int
	row       warehouse.EventRow
	deadClass string // non-empty: poison, goes to the dead letters
	deadErr   error
	// skip: this event is stored already (an earlier delivery, another
	// message with the same (source, id), or a higher revision of it), or
	// this message's dead row is; it is acked without being written again.
	skip bool
	// abandoned: the lease may have expired; neither written nor acked.
	abandoned bool
	inserted  bool
}

type pipeline struct {
	set   Settings
	cons  fetcher
	store store
	// fence serialises judge-and-insert with the other writers of the
	// table; nil with JOURNEY_WRITER_FENCE=false.
	fence *fence
	// insertPrefix starts the query id of every insert into events
	// ([insertQueryPrefix]; empty in unit tests: no orphan check).
	insertPrefix string
	dl           func(ctx context.Context, d stream.DeadLetter) error
	leases       *leases
	m            *metrics
	log          *slog.Logger
	ready        *readiness
	// supp drops (acks without storing) the events of erased customers.
	supp *suppression.Guard
	// hook says where crash fires (the test hook; zero: never), and
	// crash kills the process.
	hook    crashHook
	crash   func(point string)
	batchNo int
	now     func() time.Time

	// rows is insert's reusable argument to InsertEvents (insert
	// goroutine only).
	rows []warehouse.EventRow
}

// headerEstimate approximates a message's header bytes for the byte limit.
const headerEstimate = 256

// read fetches messages, decodes them and cuts batches by count, bytes and
// age, sending each to out. A batch is handed over as soon as the inserter
// is free once it is full or aged; while the inserter is busy the batch
// keeps growing up to its limits, and only then does read block, with no
// fetch outstanding, so every message it holds is covered by a lease.
// It returns, closing out, when ctx is cancelled and the open fetch ended.
func (p *pipeline) read(ctx context.Context, out chan<- []*item) {
	defer close(out)
	var (
		cur      []*item
		curBytes int
		aged     bool
		timer    = time.NewTimer(time.Hour)
	)
	timer.Stop()
	reset := func() {
		cur, curBytes, aged = nil, 0, false
		timer.Stop()
	}
	full := func() bool { return len(cur) >= p.set.BatchSize || curBytes >= p.set.BatchBytes }
	bo := retry.New(0, p.set.MaxBackoff)
	for ctx.Err() == nil {
		if full() {
			out <- cur // the inserter drains until out is closed: never stuck
			reset()
			continue
		}
		start := p.now()
		mb, err := p.cons.Fetch(p.set.BatchSize-len(cur), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			p.log.Warn("fetch failed", "err", err)
			if !bo.Wait(ctx) {
				break
			}
			continue
		}
		bo.Reset()
		msgs := mb.Messages()
		for msgs != nil {
			var send chan<- []*item
			if len(cur) > 0 && (aged || full()) {
				send = out
			}
			select {
			case m, ok := <-msgs:
				if !ok {
					msgs = nil
					continue
				}
				it := p.decode(m, start)
				if it == nil {
					continue
				}
				if len(cur) == 0 {
					timer.Reset(p.set.BatchAge)
				}
				cur = append(cur, it)
				curBytes += it.size
			case <-timer.C:
				aged = true
			case send <- cur:
				reset()
			}
		}
		if err := mb.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			p.log.Debug("fetch ended", "err", err)
		}
		// Between fetches: give an aged batch to a free inserter now.
		if len(cur) > 0 && aged {
			select {
			case out <- cur:
				reset()
			default:
			}
		}
	}
	if len(cur) > 0 {
		out <- cur
	}
}

// decode turns a delivery into an item (nil: drop it unacked).
func (p *pipeline) decode(m jetstream.Msg, fetched time.Time) *item {
	md, err := m.Metadata()
	if err != nil {
		p.log.Error("message without JetStream metadata", "subject", m.Subject(), "err", err)
		return nil
	}
	seq := md.Sequence.Stream
	if !p.leases.add(seq, m, fetched) {
		// The server redelivered a message this process still holds: our
		// lease lapsed (NATS unreachable?). Both copies are dropped; the next
		// redelivery is checked against ClickHouse like any other.
		p.log.Warn("message redelivered while held; dropping both copies", "seq", seq, "delivered", md.NumDelivered)
		return nil
	}
	it := &item{msg: m, seq: seq, delivered: md.NumDelivered, stamp: md.Timestamp, size: len(m.Data()) + headerEstimate}
	if md.NumDelivered > 1 {
		p.m.redelivered.Inc()
	}
	now := p.now()
	e, err := stream.DecodeMsg(m.Headers(), m.Data())
	if err != nil {
		it.deadClass, it.deadErr = classOf(err), err
		return it
	}
	if p.supp.Drop(e.Subject) {
		it.skip = true // an erased customer: acked, never stored nor dead-lettered
		return it
	}
	pl, err := touchpoint.Validate(&e, now)
	if err == nil {
		err = stream.CheckStored(stream.StoredSubject(m.Subject()), &e)
	}
	if err != nil {
		it.deadClass, it.deadErr = classOf(err), err
		return it
	}
	rowSeq := stream.OriginalSeq(m.Subject(), m.Headers(), seq)
	if !p.set.Minimise.Active() {
		it.row = warehouse.NewEventRow(rowSeq, &e, &pl, now)
	} else if !p.minimised(it, rowSeq, &e, pl, now) {
		return it
	}
	if err := p.store.CheckEventRow(&it.row); err != nil {
		it.deadClass, it.deadErr = reasonRejected, err
	}
	return it
}

// minimised masks or drops the event's free text as configured and sets
// the item's row, or dead-letters the item and returns false. The identity
// is judged on the event as sent: masking is how it is stored, and a
// change of the setting must not turn a replay into a conflict.
func (p *pipeline) minimised(it *item, seq uint64, e *touchpoint.Event, pl touchpoint.Payload, now time.Time) bool {
	sent := touchpoint.ContentHash(e)
	changed, err := p.set.Minimise.Apply(e)
	if err != nil {
		it.deadClass, it.deadErr = reasonInvalid, err
		return false
	}
	if changed {
		// The payload's fields follow the new data.
		if pl, err = touchpoint.Validate(e, now); err != nil {
			it.deadClass, it.deadErr = classOf(err), err
			return false
		}
	}
	it.row = warehouse.NewEventRow(seq, e, &pl, now)
	it.row.ContentHash = sent
	return true
}

func classOf(err error) string {
	switch {
	case errors.Is(err, touchpoint.ErrUnknownType):
		return reasonUnknownType
	case errors.Is(err, touchpoint.ErrInvalid):
		return reasonInvalid
	default:
		return reasonDecode
	}
}

// insertLoop processes batches until in is closed.
func (p *pipeline) insertLoop(ctx context.Context, in <-chan []*item) {
	for b := range in {
		p.process(ctx, b)
	}
}

// process stores one batch exactly once and acks it. If ctx ends first
// (shutdown past the drain deadline), the batch is left unacked and will
// be redelivered; the duplicate check makes that safe.
func (p *pipeline) process(ctx context.Context, items []*item) {
	start := time.Now()
	p.batchNo++
	defer p.leases.release(items)
	// Every message is judged by its event's identity, whatever its
	// delivery count: a broker that lost its consumer state, a publisher
	// without Nats-Msg-Id and a replay all deliver stored events "first".
	// Judging and inserting happen in this writer's turn (the fence).
	if err := p.fenced(ctx, func() error { return p.judgeAndInsert(ctx, items) }); err != nil {
		return
	}
	p.crashAt(CrashAfterInsert)
	if err := p.deadLetter(ctx, items); err != nil {
		return
	}
	rows, skipped := 0, 0
	end := time.Now()
	for _, it := range items {
		if it.abandoned {
			continue
		}
		// Fire-and-forget: a lost ack means a redelivery, which the
		// duplicate check turns into an ack without a second row.
		if err := it.msg.Ack(); err != nil {
			p.log.Warn("ack failed; the message will be redelivered and deduplicated", "seq", it.seq, "err", err)
		}
		switch {
		case it.inserted:
			rows++
			p.m.visibleSecs.Observe(end.Sub(it.stamp).Seconds())
		case it.skip:
			skipped++
		}
	}
	p.m.rows.Add(float64(rows))
	p.m.duplicates.Add(float64(skipped))
	p.m.batches.Inc()
	p.m.batchRows.Observe(float64(len(items)))
	p.m.batchSecs.Observe(time.Since(start).Seconds())
	p.log.Debug("batch stored", "messages", len(items), "rows", rows, "skipped", skipped, "took", time.Since(start))
}

// judgeAndInsert judges the items and inserts the new ones. It can run again on
// the same items (after a lost fence): what it stored is then found.
func (p *pipeline) judgeAndInsert(ctx context.Context, items []*item) error {
	if err := p.judge(ctx, items); err != nil {
		return err
	}
	if err := p.markDead(ctx, items); err != nil {
		return err
	}
	p.crashAt(CrashBeforeInsert)
	var todo []*item
	for _, it := range items {
		if !it.skip && it.deadClass == "" && !it.inserted {
			todo = append(todo, it)
		}
	}
	if p.hook.point == CrashMidInsert && p.batchNo == p.hook.batch {
		if err := p.insert(ctx, todo[:len(todo)/2]); err != nil {
			return err
		}
		p.crashAt(CrashMidInsert)
	}
	return p.insert(ctx, todo)
}

// fenced runs f in this writer's turn, again from the start if the turn
// was lost before an insert (f must be safe to repeat).
func (p *pipeline) fenced(ctx context.Context, f func() error) error {
	if p.fence == nil {
		return f()
	}
	for {
		if err := p.fence.acquire(ctx, retry.New(0, p.set.MaxBackoff)); err != nil {
			return err
		}
		err := p.awaitOrphans(ctx)
		if err == nil {
			err = f()
		}
		p.fence.release()
		if !errors.Is(err, errFenceLost) {
			return err
		}
		p.m.retries.WithLabelValues("fence").Inc()
		p.log.Warn("fence lost before the insert; judging the batch again")
	}
}

func (p *pipeline) crashAt(point string) {
	if p.hook.point == point && p.batchNo == p.hook.batch && p.crash != nil {
		p.crash(point)
	}
}

// judge decides, for every valid item, whether its event is new, a
// correction, or stored already, against the identity index and the
// items before it in the batch (touchpoint.Judge). Duplicates and stale
// revisions are skipped; a same-revision event with other content is
// dead-lettered as a conflict.
func (p *pipeline) judge(ctx context.Context, items []*item) error {
	stored, err := p.versions(ctx, items)
	if err != nil {
		return err
	}
	for _, it := range items {
		if it.deadClass != "" || it.skip {
			continue
		}
		k := warehouse.Identity{Source: it.row.Source, ID: it.row.ID}
		in := touchpoint.Version{Revision: it.row.Revision, Content: it.row.ContentHash}
		have, ok := stored[k]
		switch touchpoint.Judge(have, ok, in) {
		case touchpoint.Store:
			stored[k] = in // a later copy in this batch is judged against this one
		case touchpoint.Duplicate, touchpoint.Stale:
			it.skip = true
		case touchpoint.Conflict:
			it.deadClass = reasonConflict
			it.deadErr = fmt.Errorf("%w: source %q id %q is stored at revision %d with other content; to change an event, send it with the extension %s=%d",
				touchpoint.ErrInvalid, k.Source, k.ID, have.Revision, touchpoint.ExtRevision, have.Revision+1)
		}
	}
	return nil
}

// versions reads the stored versions of the valid items' identities.
func (p *pipeline) versions(ctx context.Context, items []*item) (map[warehouse.Identity]touchpoint.Version, error) {
	hashes := make([]uint64, 0, len(items))
	seen := make(map[uint64]bool, len(items))
	for _, it := range items {
		if it.deadClass == "" && !it.skip && !seen[it.row.IDHash] {
			seen[it.row.IDHash] = true
			hashes = append(hashes, it.row.IDHash)
		}
	}
	var found map[warehouse.Identity]touchpoint.Version
	if len(hashes) == 0 {
		return map[warehouse.Identity]touchpoint.Version{}, nil
	}
	err := p.retry(ctx, "check_events", true, func(ctx context.Context) (err error) {
		found, err = p.store.StoredVersions(ctx, hashes)
		return err
	})
	return found, err
}

// storedByUs marks the items that an insert attempt which failed on the
// client stored after all: their version is in the index now.
func (p *pipeline) storedByUs(ctx context.Context, items []*item) error {
	stored, err := p.versions(ctx, items)
	if err != nil {
		return err
	}
	for _, it := range items {
		v, ok := stored[warehouse.Identity{Source: it.row.Source, ID: it.row.ID}]
		if ok && v.Revision >= it.row.Revision {
			it.skip, it.inserted = true, true
		}
	}
	return nil
}

// markDead sets skip on the poison items whose dead row this consumer
// wrote already. A dead letter has no trusted identity, so its message's
// stream sequence is the key here.
func (p *pipeline) markDead(ctx context.Context, items []*item) error {
	var seqs []uint64
	for _, it := range items {
		if it.deadClass != "" && !it.skip {
			seqs = append(seqs, it.seq)
		}
	}
	if len(seqs) == 0 {
		return nil
	}
	var dead map[uint64]bool
	if err := p.retry(ctx, "check_dead", true, func(ctx context.Context) (err error) {
		dead, err = p.store.ExistingDeadSeqs(ctx, p.set.Consumer, seqs)
		return err
	}); err != nil {
		return err
	}
	for _, it := range items {
		if it.deadClass != "" && dead[it.seq] {
			it.skip = true
		}
	}
	return nil
}

// live drops the items whose lease may have lapsed: another writer could
// hold them now, so inserting them here could double them.
func (p *pipeline) live(items []*item) []*item {
	notBefore := p.now().Add(-p.set.leaseLimit())
	out := make([]*item, 0, len(items))
	for _, it := range items {
		if it.abandoned || it.skip {
			continue
		}
		if !p.leases.valid(it.seq, notBefore) {
			it.abandoned = true
			p.m.abandoned.Inc()
			p.log.Warn("lease lapsed; leaving the message to its redelivery", "seq", it.seq)
			continue
		}
		out = append(out, it)
	}
	return out
}

// insert writes the items' rows. Transient errors are retried with backoff
// (the heartbeat keeps the leases alive meanwhile). A failed attempt may
// still be stored: the server can finish an INSERT the client gave up on.
// So before a retry the writer waits until that attempt's query no longer
// runs on the server, then checks the items against the table. A
// permanent error splits the batch in halves until the rejected row is
// alone; it is then marked for the dead letters.
func (p *pipeline) insert(ctx context.Context, items []*item) error {
	uncertain := ""
	var live []*item
	var unsettled error // from the checks after an uncertain attempt, which retry until ctx ends
	err := retry.Do(ctx, retry.Policy{Max: p.set.MaxBackoff,
		Permanent: func(err error) bool {
			return permanent(err) || errors.Is(err, errFenceLost) || errors.Is(err, errUnsettled)
		},
		OnRetry: func(_ int, err error, d time.Duration) {
			p.ready.set(err)
			p.m.retries.WithLabelValues("insert").Inc()
			p.log.Warn("insert failed; retrying", "rows", len(live), "err", err, "in", d)
		}}, func(ctx context.Context) error {
		live = p.live(items)
		if len(live) > 0 && p.fence != nil && !p.fence.held() {
			return errFenceLost
		}
		if uncertain != "" && len(live) > 0 {
			// Found now means our failed attempt was stored after all.
			if unsettled = p.settle(ctx, uncertain); unsettled != nil {
				return errUnsettled
			}
			if unsettled = p.storedByUs(ctx, live); unsettled != nil {
				return errUnsettled
			}
			live = p.live(live)
		}
		if len(live) == 0 {
			return nil
		}
		qid := warehouse.NewQueryID(p.insertPrefix)
		err := p.insertOnce(ctx, qid, live, uncertain != "")
		if err != nil && !permanent(err) {
			uncertain = qid
		}
		return err
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errUnsettled):
		return unsettled
	case !permanent(err) || ctx.Err() != nil:
		return err
	case len(live) == 1:
		live[0].deadClass, live[0].deadErr = reasonRejected, err
		return nil
	}
	h := len(live) / 2
	if err := p.insert(ctx, live[:h]); err != nil {
		return err
	}
	return p.insert(ctx, live[h:])
}

// errUnsettled ends insert's retries when the checks after an uncertain
// attempt failed; insert returns their error.
var errUnsettled = errors.New("writer: uncertain insert not settled")

// insertOnce makes one attempt to insert live under query id qid, and
// marks the items inserted when it succeeds. After an attempt of
// uncertain outcome (reindex) it also writes the identity index entries
// itself: on a replicated table this insert may have been dropped as the
// first attempt's duplicate, and 18.16 runs no materialized view for a
// dropped block, while the first attempt may have stored the events
// without their entries (the replica died between the two; see
// [warehouse.DB.IndexIdentities]). If that write fails the attempt is
// retried as a whole: its rows are then found stored or dropped again.
func (p *pipeline) insertOnce(ctx context.Context, qid string, live []*item, reindex bool) error {
	// One reused slice: a fresh one per batch was ~9 MB of garbage with
	// pointers. A split's recursive calls refill it; this call does not
	// read it after them.
	if cap(p.rows) < len(live) {
		p.rows = make([]warehouse.EventRow, 0, len(live))
	}
	rows := p.rows[:0]
	for _, it := range live {
		rows = append(rows, it.row)
	}
	p.rows = rows
	ictx, cancel := context.WithTimeout(warehouse.WithQueryID(ctx, qid), p.set.InsertTimeout)
	err := p.store.InsertEvents(ictx, rows)
	cancel()
	if err == nil && reindex {
		ictx, cancel := context.WithTimeout(ctx, p.set.InsertTimeout)
		err = p.store.IndexIdentities(ictx, rows)
		cancel()
	}
	clear(rows) // do not keep this batch's strings alive
	if err != nil {
		return err
	}
	p.ready.set(nil)
	for _, it := range live {
		it.inserted = true
	}
	return nil
}

var errStillRunning = errors.New("writer: the failed insert still runs on the server")

// settle waits until the query no longer runs on the server.
func (p *pipeline) settle(ctx context.Context, queryID string) error {
	return p.retry(ctx, "settle_insert", true, func(ctx context.Context) error {
		running, err := p.store.Running(ctx, queryID)
		if err == nil && running {
			return errStillRunning
		}
		return err
	})
}

// insertQueryPrefix starts the query id of the writers' inserts into the
// events table of database: the database is in it because 18.16's
// system.processes does not say which database a query runs in.
func insertQueryPrefix(database string) string { return "journey-writer-" + database + "-" }

// deadQueryID names one insert attempt into events_dead.
func deadQueryID() string { return warehouse.NewQueryID("journey-dead-") }

var errOrphanRunning = errors.New("writer: an insert into events by a writer that no longer holds the fence still runs on the server")

// awaitOrphans waits, in this writer's turn, until no insert into events
// by any writer still executes on the server. A writer killed during an
// insert (or whose fence expired during one) leaves the statement running
// there: its rows land later, and a batch judged before they did would
// store them a second time. In a writer's turn no other writer inserts,
// so any such statement is an orphan. On a replicated cluster
// system.processes is the node's own: an orphan on another node is not
// seen.
func (p *pipeline) awaitOrphans(ctx context.Context) error {
	if p.insertPrefix == "" {
		return nil
	}
	return p.retry(ctx, "orphan_insert", true, func(ctx context.Context) error {
		n, err := p.store.RunningWithPrefix(ctx, p.insertPrefix)
		if err == nil && n > 0 {
			return errOrphanRunning
		}
		return err
	})
}

func permanent(err error) bool {
	return errors.Is(err, warehouse.ErrRejected) || warehouse.Classify(err) == warehouse.Permanent
}

// deadLetter publishes the poison items to the dead-letter stream (deduped
// there by consumer and stream sequence) and then writes them to
// events_dead.
func (p *pipeline) deadLetter(ctx context.Context, items []*item) error {
	var dead []*item
	for _, it := range items {
		if it.deadClass != "" && !it.skip && !it.abandoned {
			dead = append(dead, it)
		}
	}
	dead = p.live(dead)
	if len(dead) == 0 {
		return nil
	}
	rows := make([]warehouse.DeadRow, 0, len(dead))
	now := p.now()
	for _, it := range dead {
		d := stream.FromMsg(p.set.Consumer, it.msg, it.deadClass, it.deadErr)
		err := p.retry(ctx, "dead_letter_publish", false, func(ctx context.Context) error {
			err := p.dl(ctx, d)
			var apiErr *jetstream.APIError
			if errors.As(err, &apiErr) || errors.Is(err, nats.ErrMaxPayload) {
				// The server refused it for good (too large?): events_dead still gets it.
				p.log.Error("dead-letter stream refused the message", "seq", it.seq, "err", err)
				return nil
			}
			return err
		})
		if err != nil {
			return err
		}
		rows = append(rows, warehouse.DeadRow{
			Consumer: p.set.Consumer, StreamSeq: it.seq, Subject: it.msg.Subject(), Headers: headersJSON(it.msg.Headers()),
			Raw: string(it.msg.Data()), ErrorClass: it.deadClass, ErrorText: errText(it.deadErr),
			DeliveryCount: uint32(min(it.delivered, 1<<32-1)), DeadAt: now,
		})
		p.log.Warn("dead-lettered", "seq", it.seq, "reason", it.deadClass, "err", it.deadErr)
	}
	uncertain := ""
	err := p.retry(ctx, "insert_dead", true, func(ctx context.Context) error {
		if uncertain != "" {
			if running, err := p.store.Running(ctx, uncertain); err != nil || running {
				return errors.Join(err, errStillRunning)
			}
			seqs := make([]uint64, len(rows))
			for i, r := range rows {
				seqs[i] = r.StreamSeq
			}
			have, err := p.store.ExistingDeadSeqs(ctx, p.set.Consumer, seqs)
			if err != nil {
				return err
			}
			kept := rows[:0]
			for _, r := range rows {
				if !have[r.StreamSeq] {
					kept = append(kept, r)
				}
			}
			rows = kept
		}
		uncertain = deadQueryID()
		return p.store.InsertDead(warehouse.WithQueryID(ctx, uncertain), rows)
	})
	if err != nil {
		return err
	}
	for _, it := range dead {
		p.m.dead.WithLabelValues(it.deadClass).Inc()
	}
	return nil
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// retry runs f until it succeeds or ctx ends, backing off between tries.
// clickhouse says whether failures make the writer not ready.
func (p *pipeline) retry(ctx context.Context, op string, clickhouse bool, f func(context.Context) error) error {
	err := retry.Do(ctx, retry.Policy{Max: p.set.MaxBackoff, AttemptTimeout: p.set.InsertTimeout,
		OnRetry: func(_ int, err error, d time.Duration) {
			if clickhouse {
				p.ready.set(err)
			}
			p.m.retries.WithLabelValues(op).Inc()
			p.log.Warn("retrying", "op", op, "err", err, "in", d)
		}}, f)
	if err == nil && clickhouse {
		p.ready.set(nil)
	}
	return err
}
