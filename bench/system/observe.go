package bench

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fastjson"

	"github.com/klantreis/journey/pkg/ops"
	"github.com/klantreis/journey/pkg/projection"
	"github.com/klantreis/journey/pkg/stream"
)

// latency measures, for sampled events, the time from the publish call to
//
//	(a) visible: the events table holds a row for the event's stream
//	    sequence. The writer stores the stream in order, so the table's
//	    row count (read from the parts metadata every PollInterval)
//	    reaching the sequence means the row is there; the time is when the
//	    poll returned, an upper bound off by at most one poll;
//	(b) state: the projector's key-value write of the customer whose
//	    record says last_seq >= the event's sequence (the stored time of
//	    that write, from an ordered consumer on the bucket's stream);
//	(c) derived: a derived event naming the event among its causes (the
//	    stored time of the derived event; of several causes the latest
//	    published one is the trigger);
//	(d) api: the customer's customer_state row, which GET
//	    /v1/customers/{id} serves, reflects the event: its version (last
//	    stream sequence << 16, projection.Record.Version) reached the
//	    event's sequence; read every PollInterval like (a). In checkpoint
//	    mode (b) waits for the checkpoint, (d) does not.
//
// (a), (b) and (d) need the stream sequence, which pkg/publish reports per
// event; they use every n-th event so that observing costs little. (c)
// knows only event ids, so every event's publish time is kept for it.
type latency struct {
	mu      sync.Mutex
	visible []pendingSeq
	state   map[string][]pendingSeq
	api     map[string][]pendingSeq // by customer id
	ids     map[string]time.Time

	a, b, c, d []time.Duration
	aAt        []time.Time // when each (a) sample resolved, for the chart
}

type pendingSeq struct {
	seq uint64
	t   time.Time
}

func newLatency() *latency {
	l := &latency{}
	l.reset()
	return l
}

// reset starts a new window: results and pending samples are dropped.
func (l *latency) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.visible = nil
	l.state = map[string][]pendingSeq{}
	l.api = map[string][]pendingSeq{}
	l.ids = map[string]time.Time{}
	l.a, l.b, l.c, l.d, l.aAt = nil, nil, nil, nil, nil
}

// latencies is a window's results: (a) to (d) of [latency], and when each
// (a) resolved.
type latencies struct {
	visible, state, derived, api []time.Duration
	visibleAt                    []time.Time
}

// results returns the window's latencies.
func (l *latency) results() latencies {
	l.mu.Lock()
	defer l.mu.Unlock()
	return latencies{visible: slices.Clone(l.a), state: slices.Clone(l.b), derived: slices.Clone(l.c), api: slices.Clone(l.d),
		visibleAt: slices.Clone(l.aAt)}
}

func (l *latency) published(id string, t time.Time) {
	l.mu.Lock()
	l.ids[id] = t
	l.mu.Unlock()
}

func (l *latency) sampled(seq uint64, t time.Time, key, customer string) {
	l.mu.Lock()
	l.visible = append(l.visible, pendingSeq{seq, t})
	l.state[key] = append(l.state[key], pendingSeq{seq, t})
	l.api[customer] = append(l.api[customer], pendingSeq{seq, t})
	l.mu.Unlock()
}

// apiPending returns up to n customers with (d) samples waiting.
func (l *latency) apiPending(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, min(n, len(l.api)))
	for id := range l.api {
		if len(out) == n {
			break
		}
		out = append(out, id)
	}
	return out
}

// apiSeen resolves the (d) samples of customers whose customer_state
// version reached their sequence.
func (l *latency) apiSeen(versions map[string]uint64, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, v := range versions {
		l.d = resolve(l.api, id, v>>16, at, l.d)
	}
}

// resolve takes the samples of key up to sequence last out of pending and
// appends their latencies, as of at, to out.
func resolve(pending map[string][]pendingSeq, key string, last uint64, at time.Time, out []time.Duration) []time.Duration {
	keep := pending[key][:0]
	for _, s := range pending[key] {
		if s.seq <= last {
			out = append(out, at.Sub(s.t))
		} else {
			keep = append(keep, s)
		}
	}
	if len(keep) == 0 {
		delete(pending, key)
	} else {
		pending[key] = keep
	}
	return out
}

// rowsSeen resolves the (a) samples whose sequence is at most rows.
func (l *latency) rowsSeen(rows uint64, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	keep := l.visible[:0]
	for _, p := range l.visible {
		if p.seq <= rows {
			l.a = append(l.a, at.Sub(p.t))
			l.aAt = append(l.aAt, at)
		} else {
			keep = append(keep, p)
		}
	}
	l.visible = keep
}

// stateSeen resolves the (b) samples of key up to lastSeq.
func (l *latency) stateSeen(key string, data []byte, at time.Time, p *fastjson.Parser) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.state[key]; !ok {
		return
	}
	raw, err := projection.RecordJSON(data) // a large state is compressed
	if err != nil {
		return
	}
	v, err := p.ParseBytes(raw)
	if err != nil {
		return
	}
	l.b = resolve(l.state, key, v.GetUint64("last_seq"), at, l.b)
}

// derivedSeen resolves (c) for one derived event.
func (l *latency) derivedSeen(data []byte, at time.Time, p *fastjson.Parser) {
	v, err := p.ParseBytes(data)
	if err != nil {
		return
	}
	causes := v.GetArray("cause_event_ids")
	l.mu.Lock()
	defer l.mu.Unlock()
	var latest time.Time
	for _, c := range causes {
		if t, ok := l.ids[string(c.GetStringBytes())]; ok && t.After(latest) {
			latest = t
		}
	}
	if !latest.IsZero() {
		l.c = append(l.c, at.Sub(latest))
	}
}

// start starts the three observers; stop ends them.
func (l *latency) start(ctx context.Context, sys *system, poll time.Duration) (stop func(), err error) {
	ctx, cancel := context.WithCancel(ctx)
	var stops []func()
	stop = func() {
		cancel()
		for _, s := range stops {
			s()
		}
	}
	prefix := "$KV." + stateBucket + "."
	kvCons, err := sys.js.OrderedConsumer(ctx, "KV_"+stateBucket, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		stop()
		return nil, err
	}
	var kvParser fastjson.Parser
	kvCC, err := kvCons.Consume(func(m jetstream.Msg) {
		at := time.Now()
		if md, err := m.Metadata(); err == nil {
			at = md.Timestamp
		}
		l.stateSeen(strings.TrimPrefix(m.Subject(), prefix), m.Data(), at, &kvParser)
	})
	if err != nil {
		stop()
		return nil, err
	}
	stops = append(stops, kvCC.Stop)
	dCons, err := sys.js.OrderedConsumer(ctx, stream.DerivedStream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		stop()
		return nil, err
	}
	var dParser fastjson.Parser
	dCC, err := dCons.Consume(func(m jetstream.Msg) {
		at := time.Now()
		if md, err := m.Metadata(); err == nil {
			at = md.Timestamp
		}
		l.derivedSeen(m.Data(), at, &dParser)
	})
	if err != nil {
		stop()
		return nil, err
	}
	stops = append(stops, dCC.Stop)
	done := make(chan struct{})
	stops = append(stops, func() { <-done })
	go func() {
		defer close(done)
		l.poll(ctx, sys, poll)
	}()
	return stop, nil
}

// poll reads the row count every interval until ctx ends.
func (l *latency) poll(ctx context.Context, sys *system, every time.Duration) {
	pruned := time.Now()
	ops.Every(ctx, every, func(ctx context.Context) {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		rows, err := sys.rows(qctx)
		cancel()
		if err == nil {
			l.rowsSeen(rows, time.Now())
		}
		if ids := l.apiPending(apiPollMax); len(ids) > 0 {
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			vs, err := sys.stateVersions(qctx, ids)
			cancel()
			if err == nil {
				l.apiSeen(vs, time.Now())
			}
		}
		if now := time.Now(); now.Sub(pruned) > 5*time.Second {
			l.prune(now.Add(-idHorizon))
			pruned = now
		}
	})
}

// apiPollMax bounds the customers one (d) poll asks for.
const apiPollMax = 500

// pending is the number of (a), (b) and (d) samples not resolved yet.
func (l *latency) pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.visible)
	for _, p := range l.state {
		n += len(p)
	}
	for _, p := range l.api {
		n += len(p)
	}
	return n
}

// idHorizon is how long an event id is kept for (c): a derived event later
// than this after its cause would be missed, which the report would show as
// fewer samples; it keeps a 10-minute soak's memory flat.
const idHorizon = time.Minute

func (l *latency) prune(before time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, t := range l.ids {
		if t.Before(before) {
			delete(l.ids, id)
		}
	}
}

// sample is one monitor reading.
type sample struct {
	at                time.Time
	rows              uint64
	writer, projector int64
	ok                bool
}

// monitor reads rows and backlogs every interval until ctx ends.
type monitor struct {
	mu      sync.Mutex
	samples []sample
}

func (m *monitor) run(ctx context.Context, sys *system, every time.Duration) {
	ops.EveryFromNow(ctx, every, func(ctx context.Context) {
		// A reading may take longer than the interval on a loaded
		// machine; a late reading is better than none.
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		s := sample{at: time.Now()}
		b, err1 := sys.backlog(qctx)
		rows, err2 := sys.rows(qctx)
		cancel()
		if err1 == nil && err2 == nil {
			s.rows, s.writer, s.projector, s.ok = rows, b.writer, b.projector, true
		}
		m.mu.Lock()
		m.samples = append(m.samples, s)
		m.mu.Unlock()
	})
}

// between returns the good samples taken in [from, to].
func (m *monitor) between(from, to time.Time) []sample {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []sample
	for _, s := range m.samples {
		if s.ok && !s.at.Before(from) && !s.at.After(to) {
			out = append(out, s)
		}
	}
	return out
}
