package projection

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/touchpoint"
)

// Msg is one fact event as the consumer delivers it.
type Msg struct {
	// Seq is the stream sequence.
	Seq        uint64
	CustomerID string
	Event      journey.Event
	// SurveyID of a survey answer, for the responses table.
	SurveyID string
	// Published is when the stream stored the event, for the latency metric.
	Published time.Time
}

// Update is one customer's change in a batch: what the sink writes.
type Update struct {
	CustomerID string
	Record     *Record
	Change     journey.Change
	// Msgs are the events applied in this batch (survey answers become
	// response rows).
	Msgs []Msg
	// At is the time the update was made (the now of the rules).
	At time.Time
}

// Observer is told what a committed batch did, for metrics. Calls happen
// on the goroutine that called Process or Sweep.
type Observer interface {
	Applied(msgs []Msg, committedAt time.Time)
	Transition(from, to journey.Stage)
	Derived(kind touchpoint.Kind)
}

// Options configure a Projector. Rules, Store, Sink, Emitter and Index are
// required.
type Options struct {
	Rules   *journey.Rulebook
	Store   Store
	Sink    Sink
	Emitter Emitter
	Index   Index
	// Partition this projector owns; written into index entries.
	Partition int
	// Source is the CloudEvents source of derived events (default
	// "/journey/projector").
	Source string
	// CacheSize bounds the records kept in memory (default 100000). A miss
	// costs one store read.
	CacheSize int
	// LoadConcurrency bounds parallel store reads (default 32).
	LoadConcurrency int
	// SweepLimit bounds the customers one sweep round advances (default 2000).
	SweepLimit int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Observer receives metrics callbacks; nil for none.
	Observer Observer
	// Erased, when set, reports customers who were erased (the
	// suppression list): a sweep forgets them instead of advancing them,
	// so a state still in memory never writes them back. Nil: nobody.
	Erased func(customerID string) bool
	// History is the log a correction re-derives its customer from
	// (docs/privacy.md, Rectification). Nil: a batch holding a correction
	// fails with an error wrapping ErrOptions, rather than merging it into
	// facts it may contradict.
	History History
	// Accounts, when set, is given the events of every committed batch
	// before the customers' states are written (see [Accounts]).
	Accounts AccountHook
}

// AccountHook commits the account side of a batch; an error fails the
// batch, which is then re-run.
type AccountHook interface {
	Apply(ctx context.Context, msgs []Msg) error
}

// ErrOptions marks a missing dependency.
var ErrOptions = errors.New("projection: bad options")

// Defaults the customer and the account projections share: their derived
// events come from one source, and a cache or a fan-out of store calls is
// bounded alike in both.
const (
	defaultSource      = "/journey/projector"
	defaultCacheSize   = 100000
	defaultConcurrency = 32
)

// orDefault is a bound of [Options] or [AccountOptions] with its default
// filled in: in both, zero or less means unset.
func orDefault(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

type cached struct {
	rec *Record
	rev uint64
}

// Projector applies batches for one partition. It is not safe for
// concurrent use: one goroutine owns a partition, which is what keeps a
// customer's events in order and the compare-and-set uncontended.
type Projector struct {
	o        Options
	cache    map[string]cached
	fifo     []string
	schedule *schedule
}

// New checks the options and returns a projector.
func New(o Options) (*Projector, error) {
	if o.Rules == nil || o.Store == nil || o.Sink == nil || o.Emitter == nil || o.Index == nil {
		return nil, fmt.Errorf("%w: rules, store, sink, emitter and index are required", ErrOptions)
	}
	o.Source = cmp.Or(o.Source, defaultSource)
	o.CacheSize = orDefault(o.CacheSize, defaultCacheSize)
	o.LoadConcurrency = orDefault(o.LoadConcurrency, defaultConcurrency)
	o.SweepLimit = orDefault(o.SweepLimit, 2000)
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Projector{o: o, cache: make(map[string]cached), schedule: newSchedule()}, nil
}

// Schedule registers a customer's expiry for the sweep (used to rebuild
// the schedule from the index at start). Zero removes it.
func (p *Projector) Schedule(customerID string, at time.Time) { p.schedule.set(customerID, at) }

// Scheduled is the number of customers waiting for their expiry.
func (p *Projector) Scheduled() int { return len(p.schedule.at) }

// EachScheduled calls fn for every customer waiting for their expiry (in
// no order), for a checkpoint that stores the schedule. Like the rest of
// the Projector, it must not run beside Process or Sweep.
func (p *Projector) EachScheduled(fn func(customerID string, at time.Time)) {
	for id, at := range p.schedule.at {
		fn(id, at)
	}
}

// Process applies a batch and commits what changed: warehouse rows, then
// derived events, then index entries, then the stored states. When it
// returns a nil error every event of the batch is reflected in the store,
// except those of the rejected customers (see [Rejected]), so the caller
// may ack them all once it has set the rejected ones aside. On error
// nothing may be acked; the batch can be processed again (or redelivered)
// with the same result.
func (p *Projector) Process(ctx context.Context, msgs []Msg) ([]Rejected, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	now := p.o.Now()
	order := make([]string, 0, len(msgs))
	groups := make(map[string][]Msg, len(msgs))
	for _, m := range msgs {
		if _, ok := groups[m.CustomerID]; !ok {
			order = append(order, m.CustomerID)
		}
		groups[m.CustomerID] = append(groups[m.CustomerID], m)
	}
	recs, err := p.load(ctx, order)
	if err != nil {
		return nil, err
	}
	updates := make([]Update, 0, len(order))
	evs := make([]journey.Event, 0, 16)
	for _, id := range order {
		g := groups[id]
		c := recs[id]
		evs = evs[:0]
		var maxSeq uint64
		for i := range g {
			evs = append(evs, g[i].Event)
			maxSeq = max(maxSeq, g[i].Seq)
		}
		var ch journey.Change
		if corrects(c.rec.State, evs) {
			st, rch, err := p.rebuild(ctx, c.rec.State, now, evs, maxSeq)
			if err != nil {
				p.forget(order)
				return nil, err
			}
			c.rec.State, ch = st, rch
		} else {
			ch = p.o.Rules.Apply(c.rec.State, now, evs...)
		}
		if !ch.Changed() {
			continue // every event was already held: a redelivery
		}
		if maxSeq > c.rec.LastSeq {
			c.rec.LastSeq, c.rec.Bump = maxSeq, 0
		} else {
			c.rec.Bump++
		}
		updates = append(updates, Update{CustomerID: id, Record: c.rec, Change: ch, Msgs: g, At: now})
	}
	updates, data, rejected, err := p.encode(updates)
	if err != nil {
		p.forget(order)
		return nil, err
	}
	// Every event goes to the accounts, also those that changed nothing
	// of their customer (an older visit, a second quote).
	if err := p.commit(ctx, updates, recs, data, withoutRejected(msgs, rejected)); err != nil {
		p.forget(order)
		return nil, err
	}
	if p.o.Observer != nil {
		p.o.Observer.Applied(withoutRejected(msgs, rejected), p.o.Now())
	}
	return rejected, nil
}

// corrects reports whether any of evs supersedes what st holds.
func corrects(st *journey.State, evs []journey.Event) bool {
	for i := range evs {
		if st.Corrects(&evs[i]) {
			return true
		}
	}
	return false
}

// rebuild re-derives a customer from the log after a correction: every
// version of their events the log holds up to upTo (the batch's last
// sequence: a later event is applied in its own batch, with its own rows)
// plus the batch's (which the log holds too, unless it was trimmed since),
// the current version of each.
func (p *Projector) rebuild(ctx context.Context, old *journey.State, now time.Time, batch []journey.Event, upTo uint64) (*journey.State, journey.Change, error) {
	if p.o.History == nil {
		return nil, journey.Change{}, fmt.Errorf("%w: a correction of customer %q needs a History to re-derive from", ErrOptions, old.CustomerID)
	}
	hist, err := p.o.History.Events(ctx, old.CustomerID, upTo)
	if err != nil {
		return nil, journey.Change{}, fmt.Errorf("projection: history of %q for a correction: %w", old.CustomerID, err)
	}
	st, ch := p.o.Rules.Rebuild(old, now, append(hist, batch...))
	return st, ch, nil
}

// encode asks an [Encoder] store about every update before anything of
// the batch is written, keeps the bytes it returns for Put, and sets aside
// the customers whose record it refuses. Their records were changed in memory: they are
// dropped from the cache, so that their next event starts again from what
// the store holds.
func (p *Projector) encode(updates []Update) ([]Update, [][]byte, []Rejected, error) {
	enc, ok := p.o.Store.(Encoder)
	if !ok {
		return updates, nil, nil, nil
	}
	kept := updates[:0]
	data := make([][]byte, 0, len(updates))
	var rejected []Rejected
	for _, u := range updates {
		b, err := enc.Encode(u.Record)
		switch {
		case errors.Is(err, ErrTooLarge):
			rejected = append(rejected, Rejected{CustomerID: u.CustomerID, Msgs: u.Msgs, Err: err})
			p.forget([]string{u.CustomerID})
		case err != nil:
			return nil, nil, nil, fmt.Errorf("projection: encode the record of %q: %w", u.CustomerID, err)
		default:
			kept = append(kept, u)
			data = append(data, b)
		}
	}
	return kept, data, rejected, nil
}

func withoutRejected(msgs []Msg, rejected []Rejected) []Msg {
	if len(rejected) == 0 {
		return msgs
	}
	skip := make(map[string]bool, len(rejected))
	for _, r := range rejected {
		skip[r.CustomerID] = true
	}
	out := make([]Msg, 0, len(msgs))
	for _, m := range msgs {
		if !skip[m.CustomerID] {
			out = append(out, m)
		}
	}
	return out
}

// Sweep applies the inactivity rule to customers whose expiry has passed,
// at most SweepLimit per call; it reports how many it advanced, so the
// caller can call again while there are more. A customer whose advanced
// record the store refuses is rejected: it keeps its stored state and is
// not swept again until its next event.
func (p *Projector) Sweep(ctx context.Context) (int, []Rejected, error) {
	now := p.o.Now()
	due := p.withoutErased(p.schedule.due(now, p.o.SweepLimit))
	if len(due) == 0 {
		return 0, nil, nil
	}
	recs, err := p.load(ctx, due)
	if err != nil {
		p.requeue(due, now)
		return 0, nil, err
	}
	var updates []Update
	var moved []Expiry
	for _, id := range due {
		c := recs[id]
		ch := p.o.Rules.Advance(c.rec.State, now)
		if !ch.Changed() {
			// The index was stale (a restart or a failed write left it
			// behind): correct it and keep the real expiry scheduled.
			if exp := c.rec.State.Expires; !p.schedule.at[id].Equal(exp) {
				moved = append(moved, Expiry{CustomerID: id, Partition: p.o.Partition, At: exp})
				p.schedule.set(id, exp)
			}
			continue
		}
		c.rec.Bump++
		updates = append(updates, Update{CustomerID: id, Record: c.rec, Change: ch, At: now})
	}
	if len(moved) > 0 {
		if err := p.o.Index.Set(ctx, moved); err != nil {
			return 0, nil, fmt.Errorf("projection: expiry index: %w", err)
		}
	}
	updates, data, rejected, err := p.encode(updates)
	if err != nil {
		p.forget(due)
		p.requeue(due, now)
		return 0, nil, err
	}
	if err := p.commit(ctx, updates, recs, data, nil); err != nil {
		p.forget(due)
		p.requeue(due, now)
		return 0, nil, err
	}
	return len(due), rejected, nil
}

// withoutErased drops erased customers from ids, and from the cache and
// the schedule.
func (p *Projector) withoutErased(ids []string) []string {
	if p.o.Erased == nil {
		return ids
	}
	out := ids[:0]
	for _, id := range ids {
		if p.o.Erased(id) {
			delete(p.cache, id)
			delete(p.schedule.at, id)
			continue
		}
		out = append(out, id)
	}
	return out
}

func (p *Projector) requeue(ids []string, at time.Time) {
	for _, id := range ids {
		p.schedule.set(id, at)
	}
}

// commit writes in the order that makes a crash at any point safe: the
// store's state is written last, so whatever it does not hold yet is
// re-applied, and everything written before it is idempotent.
// data are the updates' encoded records, or nil when the store encodes
// them itself.
// accountMsgs are the events for the account hook (nil from a sweep).
func (p *Projector) commit(ctx context.Context, updates []Update, recs map[string]cached, data [][]byte, accountMsgs []Msg) error {
	if len(updates) == 0 {
		if p.o.Accounts != nil && len(accountMsgs) > 0 {
			return p.applyAccounts(ctx, accountMsgs)
		}
		return nil
	}
	var derived []touchpoint.Event
	for i := range updates {
		derived = p.appendDerived(derived, &updates[i])
	}
	var index []Expiry
	for i := range updates {
		u := &updates[i]
		if p.schedule.at[u.CustomerID].Equal(u.Record.State.Expires) {
			continue
		}
		index = append(index, Expiry{CustomerID: u.CustomerID, Partition: p.o.Partition, At: u.Record.State.Expires})
	}
	// Rows, derived events and index entries do not depend on each other:
	// written side by side, they cost one round trip. The state comes after
	// all three, so whatever a crash interrupts is re-applied.
	var wg sync.WaitGroup
	var errSink, errEmit, errIndex error
	// write runs one of the three in its own goroutine; its error, named
	// by what, lands in *errp.
	write := func(errp *error, what string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				*errp = fmt.Errorf("projection: %s: %w", what, err)
			}
		}()
	}
	write(&errSink, "warehouse", func() error { return p.o.Sink.Write(ctx, updates) })
	if len(derived) > 0 {
		write(&errEmit, "derived events", func() error { return p.o.Emitter.Emit(ctx, derived) })
	}
	if len(index) > 0 {
		write(&errIndex, "expiry index", func() error { return p.o.Index.Set(ctx, index) })
	}
	wg.Wait()
	if err := errors.Join(errSink, errEmit, errIndex); err != nil {
		return err
	}
	if p.o.Accounts != nil && len(accountMsgs) > 0 {
		if err := p.applyAccounts(ctx, accountMsgs); err != nil {
			return err
		}
	}
	puts := make([]Put, len(updates))
	for i := range updates {
		u := &updates[i]
		puts[i] = Put{CustomerID: u.CustomerID, Record: u.Record, Rev: recs[u.CustomerID].rev}
		if data != nil {
			puts[i].Data = data[i]
		}
	}
	revs, err := p.o.Store.Put(ctx, puts)
	if err != nil {
		return fmt.Errorf("projection: store: %w", err)
	}
	for i := range updates {
		u := &updates[i]
		p.cache[u.CustomerID] = cached{rec: u.Record, rev: revs[i]}
		p.schedule.set(u.CustomerID, u.Record.State.Expires)
		if p.o.Observer != nil {
			h := u.Record.State.History
			if u.Change.HistoryFrom >= 0 {
				for j := u.Change.HistoryFrom; j < len(h); j++ {
					p.o.Observer.Transition(h[j].From, h[j].To)
				}
			}
		}
	}
	if p.o.Observer != nil {
		for i := range derived {
			p.o.Observer.Derived(derived[i].Kind())
		}
	}
	p.evict()
	return nil
}

// load returns the records of ids, from the cache or the store (in
// parallel, bounded).
func (p *Projector) load(ctx context.Context, ids []string) (map[string]cached, error) {
	out := make(map[string]cached, len(ids))
	var miss []string
	for _, id := range ids {
		if c, ok := p.cache[id]; ok {
			out[id] = c
		} else {
			miss = append(miss, id)
		}
	}
	if len(miss) == 0 {
		return out, nil
	}
	if bg, ok := p.o.Store.(BatchGetter); ok {
		miss = p.loadMany(ctx, bg, miss, out)
		if len(miss) == 0 {
			return out, nil
		}
	}
	got := make([]cached, len(miss))
	errs := make([]error, len(miss))
	sem := make(chan struct{}, p.o.LoadConcurrency)
	var wg sync.WaitGroup
	for i, id := range miss {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			rec, rev, err := p.o.Store.Get(ctx, id)
			switch {
			case errors.Is(err, ErrNotFound):
				got[i] = cached{rec: &Record{State: journey.NewState(id)}}
			case err != nil:
				errs[i] = err
			default:
				if rec.State == nil {
					rec.State = journey.NewState(id)
				}
				got[i] = cached{rec: rec, rev: rev}
			}
		}()
	}
	wg.Wait()
	failed := 0
	var first error
	for _, err := range errs {
		if err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
	}
	if first != nil {
		return nil, fmt.Errorf("projection: load: %d of %d reads failed, first: %w", failed, len(miss), first)
	}
	for i, id := range miss {
		out[id] = got[i]
		p.cache[id] = got[i]
		p.fifo = append(p.fifo, id)
	}
	return out, nil
}

// batchGetChunk bounds the ids of one batched read (the server answers at
// most 1024 per request).
const batchGetChunk = 1000

// loadMany reads ids in chunks with one round trip each, caches what it
// learns and returns the ids it must still read one by one: those of a
// truncated reply or of a chunk whose read failed (for example a server
// without batched reads).
func (p *Projector) loadMany(ctx context.Context, bg BatchGetter, ids []string, out map[string]cached) []string {
	var rest []string
	for i := 0; i < len(ids); i += batchGetChunk {
		chunk := ids[i:min(i+batchGetChunk, len(ids))]
		found, missing, err := bg.GetMany(ctx, chunk)
		if err != nil {
			rest = append(rest, chunk...)
			continue
		}
		skip := make(map[string]bool, len(missing))
		for _, id := range missing {
			skip[id] = true
		}
		rest = append(rest, missing...)
		for _, id := range chunk {
			if skip[id] {
				continue
			}
			c := cached{rec: &Record{State: journey.NewState(id)}}
			if g, ok := found[id]; ok {
				if g.Record.State == nil {
					g.Record.State = journey.NewState(id)
				}
				c = cached{rec: g.Record, rev: g.Rev}
			}
			out[id] = c
			p.cache[id] = c
			p.fifo = append(p.fifo, id)
		}
	}
	return rest
}

// forget drops cached records that a failed commit may have changed in
// memory, so the retry starts from the store.
func (p *Projector) forget(ids []string) {
	for _, id := range ids {
		delete(p.cache, id)
	}
}

func (p *Projector) evict() {
	for len(p.cache) > p.o.CacheSize && len(p.fifo) > 0 {
		delete(p.cache, p.fifo[0])
		p.fifo = p.fifo[1:]
	}
	if cap(p.fifo) > 4*p.o.CacheSize && len(p.fifo) < p.o.CacheSize {
		p.fifo = append([]string(nil), p.fifo...)
	}
}
