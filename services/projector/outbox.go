package projector

import (
	"bytes"
	"context"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/projection"
	"github.com/klantreis/journey/pkg/retry"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/warehouse"
)

// The warehouse rows take a detour through a JetStream work queue (the
// outbox): a partition's commit publishes its rows there (fast, local,
// durable) before it writes the states, and a loader inserts them into
// ClickHouse in large batches and acks them after the insert. ClickHouse's
// insert latency (hundreds of ms per insert on a busy machine, and parts
// that must not pile up) then never holds up projecting, while a crash at
// any point still loses nothing: rows published and not inserted are
// redelivered, and inserts are idempotent (ReplacingMergeTree by version).
// outboxSubject is the outbox stream's subject: named after the stream so
// that two projector deployments on one server do not overlap.
func outboxSubject(streamName string) string { return stream.ProjectorOutboxSubject(streamName) }

const (
	// rowsPerMsg keeps an outbox message well under the 1 MiB payload limit.
	rowsPerMsg = 200
)

// rowSet is one outbox message.
type rowSet struct {
	States      []warehouse.CustomerStateRow `json:"s,omitempty"`
	Transitions []warehouse.TransitionRow    `json:"t,omitempty"`
	Responses   []warehouse.ResponseRow      `json:"r,omitempty"`
	// ZeroScores lists the States whose NPSScore points at 0. gob sends no
	// zero value, not even behind a pointer, so a score of 0 (a real
	// answer: the lowest) would come back as nil (no answer) and be stored
	// as NULL; encodeRowSet records them here and decodeRowSet restores
	// them. JSON keeps the pointer and needs no help.
	ZeroScores []int `json:"-"`
}

// outboxSink is the projection.Sink: it publishes a batch's rows to the
// outbox and returns once they are stored.
type outboxSink struct {
	js      jetstream.JetStream
	subject string
	timeout time.Duration
	// maxBytes bounds the encoded rows of one message: the broker's
	// message limit less headroom for the subject and header.
	maxBytes int
	// tables is the suffix of the tables the rows go to: the rules
	// version's (pkg/ruleset), "" for the base. It travels in tablesHeader.
	tables string
}

// tablesHeader names the table suffix of an outbox message's rows; absent
// for the base tables.
const tablesHeader = "Journey-Rows-Tables"

// encodingHeader names the encoding of an outbox message's rows: "gob".
// Messages without it are JSON, as written before gob; the loader reads
// both, so an outbox left by an older projector is still loaded.
const encodingHeader = "Journey-Rows-Encoding"

// encodeRowSet encodes rows with encoding/gob: encoding/json was a large
// share of a drain's CPU, much of it on these rows, and gob encodes and
// decodes them several times faster (BenchmarkRowSetCodec; figures in
// docs/perf-projector.md, "Third round").
func encodeRowSet(set *rowSet) (*nats.Msg, error) {
	enc := *set // the caller's set stays as it was
	enc.ZeroScores = nil
	for i := range enc.States {
		if s := enc.States[i].NPSScore; s != nil && *s == 0 {
			enc.ZeroScores = append(enc.ZeroScores, i)
		}
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&enc); err != nil {
		return nil, fmt.Errorf("projector: encode rows: %w", err)
	}
	return &nats.Msg{Header: nats.Header{encodingHeader: []string{"gob"}}, Data: buf.Bytes()}, nil
}

// decodeRowSet reads an outbox message in either encoding.
func decodeRowSet(h nats.Header, data []byte) (rowSet, error) {
	var set rowSet
	switch enc := h.Get(encodingHeader); enc {
	case "gob":
		if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&set); err != nil {
			return rowSet{}, fmt.Errorf("projector: decode gob rows: %w", err)
		}
		for _, i := range set.ZeroScores {
			if i < 0 || i >= len(set.States) {
				return rowSet{}, fmt.Errorf("projector: decode gob rows: zero score at state %d of %d", i, len(set.States))
			}
			var zero uint8
			set.States[i].NPSScore = &zero
		}
		set.ZeroScores = nil
	case "":
		if err := json.Unmarshal(data, &set); err != nil {
			return rowSet{}, fmt.Errorf("projector: decode JSON rows: %w", err)
		}
	default:
		return rowSet{}, fmt.Errorf("projector: rows in unknown encoding %q", enc)
	}
	return set, nil
}

func (o *outboxSink) Write(ctx context.Context, updates []projection.Update) error {
	var futures []jetstream.PubAckFuture
	for i := 0; i < len(updates); i += rowsPerMsg {
		var set rowSet
		set.States, set.Transitions, set.Responses = rows(updates[i:min(i+rowsPerMsg, len(updates))])
		var err error
		if futures, err = o.publish(futures, set); err != nil {
			return err
		}
	}
	return awaitAcks(ctx, futures, o.timeout, "outbox")
}

// publish sends set as one message, or as two halves (recursively) when it
// is larger than a message may be: 200 customers' rows are far below the
// limit unless their survey comments are long, and a message the broker
// refuses would be retried forever. The loader does not need a customer's
// rows together: each row is idempotent on its own.
func (o *outboxSink) publish(futures []jetstream.PubAckFuture, set rowSet) ([]jetstream.PubAckFuture, error) {
	m, err := encodeRowSet(&set)
	if err != nil {
		return futures, err
	}
	if n := len(set.States) + len(set.Transitions) + len(set.Responses); len(m.Data) > o.maxBytes && n > 1 {
		a, b := set.halves()
		if futures, err = o.publish(futures, a); err != nil {
			return futures, err
		}
		return o.publish(futures, b)
	}
	m.Subject = o.subject
	if o.tables != "" {
		m.Header.Set(tablesHeader, o.tables)
	}
	f, err := o.js.PublishMsgAsync(m)
	if err != nil {
		return futures, fmt.Errorf("projector: outbox: %d rows in %d bytes: %w", len(set.States)+len(set.Transitions)+len(set.Responses), len(m.Data), err)
	}
	return append(futures, f), nil
}

// halves splits the rows, taken in order (states, transitions, responses),
// into a first half of n/2 and the rest: of two or more rows, both halves
// hold at least one and fewer than all.
func (s rowSet) halves() (rowSet, rowSet) {
	k := (len(s.States) + len(s.Transitions) + len(s.Responses)) / 2
	ns := min(len(s.States), k)
	nt := min(len(s.Transitions), k-ns)
	nr := min(len(s.Responses), k-ns-nt)
	return rowSet{States: s.States[:ns], Transitions: s.Transitions[:nt], Responses: s.Responses[:nr]},
		rowSet{States: s.States[ns:], Transitions: s.Transitions[nt:], Responses: s.Responses[nr:]}
}

// loader moves rows from the outbox into ClickHouse.
type loader struct {
	js       jetstream.JetStream
	stream   string
	durable  string
	db       warehouseConn
	maxRows  int
	maxWait  time.Duration
	retryMax time.Duration
	// ackWait is the outbox consumer's redelivery timeout (the projector's
	// AckWait; 2*attemptTimeout when zero). Messages being inserted are
	// held with in-progress acks, so after a crash their rows come back
	// within ackWait, not after the longest insert.
	ackWait time.Duration
	met     *metrics
	log     *slog.Logger
}

func (l *loader) run(ctx context.Context) {
	var cons jetstream.Consumer
	if err := keepTrying(ctx, l.log, "create outbox consumer", l.retryMax, func(ctx context.Context) error {
		var err error
		cons, err = l.js.CreateOrUpdateConsumer(ctx, l.stream, stream.ProjectorOutboxConsumerConfig(l.durable, l.redelivery()))
		return err
	}); err != nil {
		return
	}
	bo := retry.New(time.Second, l.retryMax)
	for ctx.Err() == nil {
		it, err := cons.Messages(jetstream.PullMaxMessages(200), jetstream.PullHeartbeat(stream.PullHeartbeat))
		if err != nil {
			l.log.Warn("outbox consume failed; retrying", "err", err)
			bo.Wait(ctx)
			continue
		}
		bo.Reset()
		if l.loop(ctx, it) {
			stream.HandBack(it)
		} else {
			it.Stop()
		}
	}
}

// loop loads rows until ctx ends or the iterator breaks, or (silent)
// until it delivered nothing for stream.SilentPull, when the caller pulls
// afresh: its pull request may have gone with a killed consumer leader.
func (l *loader) loop(ctx context.Context, it jetstream.MessagesContext) (silent bool) {
	pull := stream.Watch(it, stream.SilentPull)
	for ctx.Err() == nil {
		m, err := pull.Next(time.Second)
		if err != nil {
			if errors.Is(err, stream.ErrSilentPull) {
				return true
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return false
			}
			continue
		}
		// Rows of different rules versions (around a switch) go to
		// different tables: gathered and inserted apart. Account rows
		// (one table set, not versioned) travel beside them.
		msgs := map[string][]jetstream.Msg{}
		sets := map[string]*rowSet{}
		accts := map[string]*accountRowSet{}
		rows := 0
		add := func(m jetstream.Msg) {
			tables := m.Headers().Get(tablesHeader)
			msgs[tables] = append(msgs[tables], m)
			if isAccountRows(m.Headers()) {
				if accts[tables] == nil {
					accts[tables] = &accountRowSet{}
				}
				if err := accts[tables].add(m.Data()); err != nil {
					l.log.Error("outbox message undecodable; dropped", "err", err)
				}
				return
			}
			s, err := decodeRowSet(m.Headers(), m.Data())
			if err != nil {
				l.log.Error("outbox message undecodable; dropped", "err", err)
				return
			}
			set := sets[tables]
			if set == nil {
				set = &rowSet{}
				sets[tables] = set
			}
			set.States = append(set.States, s.States...)
			set.Transitions = append(set.Transitions, s.Transitions...)
			set.Responses = append(set.Responses, s.Responses...)
			rows += len(s.States)
		}
		add(m)
		// Gather what arrives within maxWait: a few large inserts.
		deadline := time.Now().Add(l.maxWait)
		for rows < l.maxRows {
			wait := time.Until(deadline)
			if wait <= 0 {
				break
			}
			m, err := pull.Next(wait)
			if err != nil {
				break
			}
			add(m)
		}
		for tables, ms := range msgs {
			set := sets[tables]
			if set == nil {
				set = &rowSet{}
			}
			l.insert(ctx, ms, latest(*set), tables, accts[tables])
		}
	}
	return false
}

// latest keeps each customer's newest state and each transition index's
// newest version: what ReplacingMergeTree would keep anyway.
func latest(set rowSet) rowSet {
	type tkey struct {
		id  string
		idx uint32
	}
	si := map[string]int{}
	var states []warehouse.CustomerStateRow
	for _, r := range set.States {
		if i, ok := si[r.CustomerID]; ok {
			if r.Version >= states[i].Version {
				states[i] = r
			}
			continue
		}
		si[r.CustomerID] = len(states)
		states = append(states, r)
	}
	ti := map[tkey]int{}
	var trs []warehouse.TransitionRow
	for _, r := range set.Transitions {
		k := tkey{r.CustomerID, r.Idx}
		if i, ok := ti[k]; ok {
			if r.Version >= trs[i].Version {
				trs[i] = r
			}
			continue
		}
		ti[k] = len(trs)
		trs = append(trs, r)
	}
	return rowSet{States: states, Transitions: trs, Responses: set.Responses}
}

// redelivery is the outbox consumer's AckWait.
func (l *loader) redelivery() time.Duration {
	if l.ackWait > 0 {
		return l.ackWait
	}
	return 2 * attemptTimeout
}

// insert writes the rows until it succeeds, then acks the messages. On
// shutdown the messages stay unacked and are redelivered later.
func (l *loader) insert(ctx context.Context, msgs []jetstream.Msg, set rowSet, tables string, accts *accountRowSet) {
	release := stream.HoldInProgress(msgs, l.redelivery()/4)
	defer release()
	if !l.store(ctx, msgs, set, tables) {
		return
	}
	if accts != nil && !l.storeAccounts(ctx, msgs, accts) {
		return
	}
	for _, m := range msgs {
		_ = m.Ack()
	}
	l.met.warehouseRows.Add(float64(len(set.States)))
}

// storeAccounts writes the account rows, retrying transient failures; rows
// ClickHouse refuses are logged and dropped (they are derived again by the
// account projection's next change). It reports false when ctx ended
// first.
func (l *loader) storeAccounts(ctx context.Context, msgs []jetstream.Msg, accts *accountRowSet) bool {
	err := l.tryWarehouse(ctx, "account rows", func(ctx context.Context, db *warehouse.DB) error {
		return accts.write(ctx, db)
	})
	switch {
	case errors.Is(err, warehouse.ErrRejected):
		l.log.Error("warehouse rejected account rows; dropped", "err", err)
	case err != nil:
		return false
	}
	return true
}

// store writes set, retrying transient failures. A set ClickHouse rejects
// is halved until the rows it can never take are alone, and each of those
// is dead-lettered, the way the writer sets aside one bad event of a
// batch: the good rows of the set are stored. It reports false when ctx
// ended first.
func (l *loader) store(ctx context.Context, msgs []jetstream.Msg, set rowSet, tables string) bool {
	err := l.write(ctx, msgs, set, tables)
	switch {
	case err == nil:
		return true
	case !errors.Is(err, warehouse.ErrRejected):
		return false // shutting down: the messages stay unacked and come back
	case set.rows() > 1:
		a, b := set.halves()
		return l.store(ctx, msgs, a, tables) && l.store(ctx, msgs, b, tables)
	default:
		return l.deadLetterRow(ctx, set, err)
	}
}

// write tries set until it is stored, ClickHouse rejects it (an error
// wrapping [warehouse.ErrRejected]: retrying cannot help) or ctx ends.
func (l *loader) write(ctx context.Context, msgs []jetstream.Msg, set rowSet, tables string) error {
	return l.tryWarehouse(ctx, "projection rows", func(ctx context.Context, db *warehouse.DB) error {
		t0 := time.Now()
		v, err := db.Variant(tables)
		if err != nil {
			return fmt.Errorf("%w: %w", warehouse.ErrRejected, err)
		}
		err = v.WriteProjection(ctx, set.States, set.Transitions, set.Responses)
		l.met.insertLatency.Observe(time.Since(t0).Seconds())
		return err
	})
}

// tryWarehouse runs attempt against the current connection, each attempt
// within attemptTimeout, until it succeeds, fails with an error wrapping
// [warehouse.ErrRejected] (retrying cannot help) or ctx ends. what names
// the rows in the log.
func (l *loader) tryWarehouse(ctx context.Context, what string, attempt func(context.Context, *warehouse.DB) error) error {
	return retry.Do(ctx, retry.Policy{Max: l.retryMax,
		Permanent: func(err error) bool { return errors.Is(err, warehouse.ErrRejected) },
		OnRetry: func(_ int, err error, wait time.Duration) {
			l.met.batchErrors.WithLabelValues("warehouse").Inc()
			l.log.Warn("warehouse insert failed; retrying", "rows", what, "err", err, "in", wait)
		}}, func(ctx context.Context) error {
		db := l.db.DB()
		if db == nil {
			return errNoWarehouse
		}
		ictx, cancel := context.WithTimeout(ctx, attemptTimeout)
		defer cancel()
		return attempt(ictx, db)
	})
}

// classRejected is the dead-letter class of an outbox row ClickHouse
// refused.
const classRejected = "rejected"

// deadLetterRow sets aside one rejected row (as its JSON row set) on the
// dead-letter stream. Its message id names the row (table, customer, and
// version or index), so a redelivered batch dead-letters it once.
func (l *loader) deadLetterRow(ctx context.Context, set rowSet, cause error) bool {
	if set.rows() == 0 {
		return true
	}
	data, err := json.Marshal(set)
	if err != nil {
		// Rows are plain data; this cannot happen, but say so if it does.
		l.log.Error("outbox row not encodable; dropped", "err", err)
		return true
	}
	d := stream.DeadLetter{Consumer: l.durable, Subject: stream.ProjectorOutboxSubject(l.stream), Data: data, Class: classRejected, Err: cause,
		ID: "dl-" + l.durable + "-" + set.key()}
	if err := retry.Do(ctx, retry.Policy{Max: l.retryMax}, func(ctx context.Context) error {
		return stream.PublishDeadLetter(ctx, l.js, d)
	}); err != nil {
		return false
	}
	l.met.deadLetters.Inc()
	l.log.Error("warehouse rejected a row; dead-lettered", "row", set.key(), "err", cause)
	return true
}

// rows is how many rows set holds.
func (s rowSet) rows() int { return len(s.States) + len(s.Transitions) + len(s.Responses) }

// key names a one-row set's row: its table, customer and version (state),
// index and version (transition) or event id (response).
func (s rowSet) key() string {
	switch {
	case len(s.States) > 0:
		r := s.States[0]
		return fmt.Sprintf("state-%s-%d", r.CustomerID, r.Version)
	case len(s.Transitions) > 0:
		r := s.Transitions[0]
		return fmt.Sprintf("transition-%s-%d-%d", r.CustomerID, r.Idx, r.Version)
	case len(s.Responses) > 0:
		r := s.Responses[0]
		return fmt.Sprintf("response-%s-%s-%s", r.CustomerID, r.Source, r.EventID)
	}
	return "empty"
}
