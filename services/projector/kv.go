package projector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/expiryindex"
	"github.com/klantreis/journey/pkg/projection"
	"github.com/klantreis/journey/pkg/stream"
)

// kvStore keeps customer records in a JetStream key-value bucket, keyed by
// stream.CustomerKey. Writes are compare-and-set on the key's revision;
// a batch of them is published asynchronously (the way KV Update publishes,
// with the expected last subject sequence) and awaited together, so one
// batch costs one round trip, not one per customer.
type kvStore struct {
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	subject string // "$KV.<bucket>."
	// direct is the bucket stream's direct-get subject
	// ("$JS.API.DIRECT.GET.KV_<bucket>"), for batched reads.
	direct  string
	timeout time.Duration
	// maxValue bounds an encoded state: a larger one could not be
	// published, and retrying it would hold up the partition for good.
	maxValue int
}

// msgHeadroom is what a message the projector writes needs beside its
// body: the subject and headers (the expected sequence of a state, the
// encoding of an outbox message).
const msgHeadroom = 4 << 10

// bodyLimit is the largest body the broker takes in one message.
func bodyLimit(nc *nats.Conn) int { return max(int(nc.MaxPayload())-msgHeadroom, 1) }

// maxStateBytes is the configured bound, or bodyLimit.
func maxStateBytes(configured int, nc *nats.Conn) int {
	if configured > 0 {
		return configured
	}
	return bodyLimit(nc)
}

// Encode refuses a state over maxValue. A state whose size bound is
// within it cannot be over it: Put encodes it, after the batch's side
// writes, as it publishes. Encoding every state up front slowed the drain:
// the broker stored nothing while the partition encoded (figures in
// docs/perf-projector.md, "Fourth round").
func (s *kvStore) Encode(rec *projection.Record) ([]byte, error) {
	if projection.SizeBound(rec) <= s.maxValue {
		return nil, nil
	}
	return s.encode(rec)
}

func (s *kvStore) encode(rec *projection.Record) ([]byte, error) {
	b, err := projection.EncodeRecord(rec)
	if err != nil {
		return nil, err
	}
	if len(b) > s.maxValue {
		return nil, fmt.Errorf("%w: the state of %q is %d bytes encoded; the limit is %d (JOURNEY_PROJECTOR_MAX_STATE_BYTES, or the broker's max_payload)",
			projection.ErrTooLarge, rec.State.CustomerID, len(b), s.maxValue)
	}
	return b, nil
}

func openBucket(ctx context.Context, js jetstream.JetStream, name, description string, replicas int) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      name,
		Description: description,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("projector: key-value bucket %s: %w", name, err)
	}
	return kv, nil
}

func (s *kvStore) Get(ctx context.Context, customerID string) (*projection.Record, uint64, error) {
	e, err := s.kv.Get(ctx, stream.CustomerKey(customerID))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, 0, projection.ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("projector: get %q: %w", customerID, err)
	}
	rec, err := projection.DecodeRecord(e.Value())
	if err != nil {
		// Treating it as absent would drop the customer's facts; the batch
		// fails and is retried, and the log names the customer.
		return nil, 0, fmt.Errorf("projector: decode state of %q: %w", customerID, err)
	}
	return rec, e.Revision(), nil
}

// GetMany reads the latest record of every customer in one direct-get
// request ("multi_last", NATS server 2.11+): the server streams one reply
// per key it holds, then an end-of-batch status. A key without a reply does
// not exist. A reply cut short by the server's byte limit leaves the ids it
// did not answer in missing; any failure (an older server, a timeout)
// returns an error and the projector reads the customers one by one.
func (s *kvStore) GetMany(ctx context.Context, customerIDs []string) (map[string]projection.Got, []string, error) {
	subjects := make([]string, len(customerIDs))
	for i, id := range customerIDs {
		subjects[i] = s.subject + stream.CustomerKey(id)
	}
	req, err := json.Marshal(struct {
		MultiLast []string `json:"multi_last"`
	}{subjects})
	if err != nil {
		return nil, nil, fmt.Errorf("projector: batched get: %w", err)
	}
	nc := s.js.Conn()
	// Replies are bounded by the request: at most one per key and the end
	// of batch.
	replies := make(chan *nats.Msg, len(customerIDs)+2)
	inbox := nc.NewRespInbox()
	sub, err := nc.ChanSubscribe(inbox, replies)
	if err != nil {
		return nil, nil, fmt.Errorf("projector: batched get: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest(s.direct, inbox, req); err != nil {
		return nil, nil, fmt.Errorf("projector: batched get: %w", err)
	}
	timer := time.NewTimer(s.timeout)
	defer timer.Stop()
	found := make(map[string]projection.Got, len(customerIDs))
	answered := make(map[string]bool, len(customerIDs))
	for {
		var m *nats.Msg
		select {
		case m = <-replies:
		case <-timer.C:
			return nil, nil, fmt.Errorf("projector: batched get: no end of batch within %s", s.timeout)
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		status := m.Header.Get("Status")
		switch status {
		case "":
		case "404": // none of the keys exists
			return found, nil, nil
		case "204": // end of batch
			if np := m.Header.Get("Nats-Num-Pending"); np != "" && np != "0" {
				var missing []string
				for _, id := range customerIDs {
					if !answered[id] {
						missing = append(missing, id)
					}
				}
				return found, missing, nil
			}
			return found, nil, nil
		default:
			return nil, nil, fmt.Errorf("projector: batched get: status %s %s", status, m.Header.Get("Description"))
		}
		subj := m.Header.Get(jetstream.SubjectHeader)
		id, ok := stream.CustomerID(strings.TrimPrefix(subj, s.subject))
		if !ok || !strings.HasPrefix(subj, s.subject) {
			return nil, nil, fmt.Errorf("projector: batched get: unexpected subject %q", subj)
		}
		answered[id] = true
		if op := m.Header.Get("KV-Operation"); op == "DEL" || op == "PURGE" {
			continue
		}
		rev, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("projector: batched get: sequence of %q: %w", id, err)
		}
		rec, err := projection.DecodeRecord(m.Data)
		if err != nil {
			return nil, nil, fmt.Errorf("projector: decode state of %q: %w", id, err)
		}
		found[id] = projection.Got{Record: rec, Rev: rev}
	}
}

func (s *kvStore) Put(ctx context.Context, puts []projection.Put) ([]uint64, error) {
	futures := make([]jetstream.PubAckFuture, len(puts))
	for i, p := range puts {
		raw := p.Data
		if raw == nil { // Encode found it certain to fit
			var err error
			if raw, err = s.encode(p.Record); err != nil {
				return nil, fmt.Errorf("projector: put %q: %w", p.CustomerID, err)
			}
		}
		m := &nats.Msg{Subject: s.subject + stream.CustomerKey(p.CustomerID), Data: raw}
		f, err := s.js.PublishMsgAsync(m, jetstream.WithExpectLastSequencePerSubject(p.Rev))
		if err != nil {
			return nil, fmt.Errorf("projector: put %q: %w", p.CustomerID, err)
		}
		futures[i] = f
	}
	revs := make([]uint64, len(puts))
	var errs []error
	timer := time.NewTimer(s.timeout)
	defer timer.Stop()
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			revs[i] = ack.Sequence
		case err := <-f.Err():
			if stream.IsWrongLastSeq(err) {
				err = fmt.Errorf("%w: %q: %v", projection.ErrConflict, puts[i].CustomerID, err)
			}
			errs = append(errs, err)
		case <-timer.C:
			return nil, fmt.Errorf("projector: put: no ack within %s", s.timeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("projector: put %d of %d states failed: %w", len(errs), len(puts), joinDistinct(errs))
	}
	return revs, nil
}

// kvIndex is the expiry index (layout: pkg/expiryindex). Without
// checkpoints it writes one key per changed customer; a checkpoint
// (ckptIndex) rewrites shards. A partition's keys of both kinds are read
// at start (one filtered watch) to rebuild its sweep schedule.
type kvIndex struct {
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	subject string
	timeout time.Duration
	// maxValue bounds a shard's value: the broker's maximum message size
	// less room for the subject and headers (default 1 MiB less 4 KiB).
	maxValue int
}

func (x *kvIndex) Set(ctx context.Context, entries []projection.Expiry) error {
	futures := make([]jetstream.PubAckFuture, 0, len(entries))
	for _, e := range entries {
		f, err := x.js.PublishMsgAsync(x.msg(expiryindex.CustomerKey(e.Partition, e.CustomerID), customerValue(e.At)))
		if err != nil {
			return fmt.Errorf("projector: index %q: %w", e.CustomerID, err)
		}
		futures = append(futures, f)
	}
	return awaitAcks(ctx, futures, x.timeout, "index")
}

// customerValue is a one-customer value; nil (a delete) for a zero time.
func customerValue(at time.Time) []byte {
	if at.IsZero() {
		return nil
	}
	return expiryindex.CustomerValue(at)
}

// msg is the write of an index key: value, or for nil what
// KeyValue.Delete sends (a tombstone, skipped by the rebuild's watch).
func (x *kvIndex) msg(key string, value []byte) *nats.Msg {
	m := &nats.Msg{Subject: x.subject + key, Header: nats.Header{}, Data: value}
	if value == nil {
		m.Header.Set("KV-Operation", "DEL")
	}
	return m
}

// indexLoad is what a partition's index held at start.
type indexLoad struct {
	// entries is the number of entries scheduled.
	entries int
	// single are the customers that have a one-customer key.
	single map[string]bool
	// shards are the shards' keys; fromShard the customers whose last
	// entry came from one.
	shards    []string
	fromShard map[string]time.Time
}

// load calls fn for every live entry of one partition, in stream order so
// that the later of a customer's one-customer key and shard entry holds.
func (x *kvIndex) load(ctx context.Context, partition int, fn func(customerID string, at time.Time)) (indexLoad, error) {
	res := indexLoad{single: map[string]bool{}, fromShard: map[string]time.Time{}}
	w, err := x.kv.WatchFiltered(ctx, []string{expiryindex.CustomerFilter(partition), expiryindex.ShardFilter(partition)}, jetstream.IgnoreDeletes())
	if err != nil {
		return res, fmt.Errorf("projector: index watch: %w", err)
	}
	defer w.Stop()
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return res, fmt.Errorf("projector: index watch closed")
			}
			if e == nil {
				return res, nil // initial values done
			}
			res.apply(e, fn)
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
}

// apply takes one index entry of the load; an unreadable one is skipped
// (the sweep schedule then misses that customer until its next event).
func (res *indexLoad) apply(e jetstream.KeyValueEntry, fn func(customerID string, at time.Time)) {
	k, ok := expiryindex.ParseKey(e.Key())
	switch {
	case !ok:
	case k.Shard:
		res.shards = append(res.shards, e.Key())
		_ = expiryindex.Decode(e.Value(), func(id string, at time.Time) {
			res.fromShard[id] = at
			fn(id, at)
			res.entries++
		})
	default:
		at, err := expiryindex.ParseCustomerValue(e.Value())
		if err != nil {
			return
		}
		res.single[k.CustomerID] = true
		delete(res.fromShard, k.CustomerID)
		fn(k.CustomerID, at)
		res.entries++
	}
}

// unshard moves a partition's shard entries to one-customer keys and
// deletes the shards: a projector without checkpoints keeps the index
// that way, and a shard left behind would bring back, at every start, the
// entries it held of customers whose one-customer key was deleted since.
func (x *kvIndex) unshard(ctx context.Context, partition int, res indexLoad) error {
	if len(res.shards) == 0 {
		return nil
	}
	entries := make([]projection.Expiry, 0, len(res.fromShard))
	for id, at := range res.fromShard {
		entries = append(entries, projection.Expiry{Partition: partition, CustomerID: id, At: at})
	}
	if err := x.Set(ctx, entries); err != nil {
		return err
	}
	futures := make([]jetstream.PubAckFuture, 0, len(res.shards))
	for _, key := range res.shards {
		f, err := x.js.PublishMsgAsync(x.msg(key, nil))
		if err != nil {
			return fmt.Errorf("projector: index shard %s: %w", key, err)
		}
		futures = append(futures, f)
	}
	return awaitAcks(ctx, futures, x.timeout, "index")
}

// joinDistinct joins errors as errors.Join does, each message once with
// how often it came: a broker that is away fails every write of a batch
// the same way, and a log line that repeats one error hundreds of times
// hides the others.
func joinDistinct(errs []error) error {
	var order []string
	first := map[string]error{}
	count := map[string]int{}
	for _, err := range errs {
		msg := err.Error()
		if count[msg] == 0 {
			order = append(order, msg)
			first[msg] = err
		}
		count[msg]++
	}
	out := make([]error, 0, len(order))
	for _, msg := range order {
		if n := count[msg]; n > 1 {
			out = append(out, fmt.Errorf("%w (%d times)", first[msg], n))
		} else {
			out = append(out, first[msg])
		}
	}
	return errors.Join(out...)
}
