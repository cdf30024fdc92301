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
		return nil, fmt.Errorf("projector: put %d of %d states failed: %w", len(errs), len(puts), errors.Join(errs...))
	}
	return revs, nil
}

// kvIndex is the expiry index: key "p<partition>.<customer key>", value
// the expiry in Unix nanoseconds. A partition's keys are read at start
// (one filtered watch) to rebuild that partition's sweep schedule.
type kvIndex struct {
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	subject string
	timeout time.Duration
}

func indexKey(partition int, customerID string) string {
	return "p" + strconv.Itoa(partition) + "." + stream.CustomerKey(customerID)
}

func (x *kvIndex) Set(ctx context.Context, entries []projection.Expiry) error {
	futures := make([]jetstream.PubAckFuture, 0, len(entries))
	for _, e := range entries {
		m := &nats.Msg{Subject: x.subject + indexKey(e.Partition, e.CustomerID), Header: nats.Header{}}
		if e.At.IsZero() {
			// What KeyValue.Delete sends: a tombstone, skipped by the
			// rebuild's watch.
			m.Header.Set("KV-Operation", "DEL")
		} else {
			m.Data = strconv.AppendInt(nil, e.At.UnixNano(), 10)
		}
		f, err := x.js.PublishMsgAsync(m)
		if err != nil {
			return fmt.Errorf("projector: index %q: %w", e.CustomerID, err)
		}
		futures = append(futures, f)
	}
	return awaitAcks(ctx, futures, x.timeout, "index")
}

// load calls fn for every live entry of one partition.
func (x *kvIndex) load(ctx context.Context, partition int, fn func(customerID string, at time.Time)) (int, error) {
	w, err := x.kv.Watch(ctx, "p"+strconv.Itoa(partition)+".*", jetstream.IgnoreDeletes())
	if err != nil {
		return 0, fmt.Errorf("projector: index watch: %w", err)
	}
	defer w.Stop()
	n := 0
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return n, fmt.Errorf("projector: index watch closed")
			}
			if e == nil {
				return n, nil // initial values done
			}
			_, key, _ := cutPartition(e.Key())
			id, ok := stream.CustomerID(key)
			ms, err := strconv.ParseInt(string(e.Value()), 10, 64)
			if !ok || err != nil {
				continue
			}
			fn(id, time.Unix(0, ms).UTC())
			n++
		case <-ctx.Done():
			return n, ctx.Err()
		}
	}
}

func cutPartition(key string) (string, string, bool) {
	for i := 0; i < len(key); i++ {
		if key[i] == '.' {
			return key[:i], key[i+1:], true
		}
	}
	return "", key, false
}
