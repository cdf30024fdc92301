package privacy

import (
	"bytes"
	"context"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/erasure"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/suppression"
	"github.com/klantreis/journey/pkg/warehouse"
)

// subjectStore erases a customer's subjects in a stream by purging them:
// every message and every revision of a key-value entry goes.
type subjectStore struct {
	js     jetstream.JetStream
	stream string
	name   string
	filter func(customerID string) string
	inflow bool
}

func (s subjectStore) Name() string { return s.name }

// Inflow is true for the touchpoint stream, which producers publish into
// directly (erasure.Inflow).
func (s subjectStore) Inflow() bool { return s.inflow }

// existingStream opens a stream; one never created is nil with a nil
// error: it holds nothing to count or erase.
func existingStream(ctx context.Context, js jetstream.JetStream, name string) (jetstream.Stream, error) {
	st, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	return st, err
}

func (s subjectStore) Count(ctx context.Context, customers []string) (uint64, error) {
	st, err := existingStream(ctx, s.js, s.stream)
	if st == nil || err != nil {
		return 0, err
	}
	var n uint64
	for _, c := range customers {
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(s.filter(c)))
		if err != nil {
			return 0, err
		}
		for _, k := range info.State.Subjects {
			n += k
		}
	}
	return n, nil
}

func (s subjectStore) Erase(ctx context.Context, customers []string) error {
	st, err := existingStream(ctx, s.js, s.stream)
	if st == nil || err != nil {
		return err
	}
	for _, c := range customers {
		if err := st.Purge(ctx, jetstream.WithPurgeSubject(s.filter(c))); err != nil {
			return fmt.Errorf("purge %s: %w", s.filter(c), err)
		}
	}
	return nil
}

// deadLetterStore deletes a customer's dead letters one by one: they sit
// under the consumer's subject, and name the customer by their original
// subject's last token (the customer key) or by their ce-subject header
// (which covers a dead-lettered subject/ce-subject mismatch too).
type deadLetterStore struct {
	js   jetstream.JetStream
	name string
}

func (s deadLetterStore) Name() string { return s.name }

func (s deadLetterStore) matching(ctx context.Context, customers []string) ([]uint64, error) {
	st, err := existingStream(ctx, s.js, stream.DeadLetterStream)
	if st == nil || err != nil {
		return nil, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, err
	}
	if info.State.Msgs == 0 {
		return nil, nil
	}
	keys, ids := map[string]bool{}, map[string]bool{}
	for _, c := range customers {
		keys[stream.CustomerKey(c)], ids[c] = true, true
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	last := info.State.LastSeq
	var seqs []uint64
	for {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return nil, err
			}
			if deadLetterOf(m.Headers(), m.Data(), keys, ids) {
				seqs = append(seqs, md.Sequence.Stream)
			}
			if md.Sequence.Stream >= last {
				return seqs, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, err
		}
		if n == 0 {
			return seqs, nil // the rest was deleted meanwhile
		}
	}
}

// deadLetterOf reports whether a dead letter is of one of the customers:
// by its original subject's customer key, by a ce-subject header (in any
// letter case: the header map keeps the case it was sent with) or by the
// subject of its decoded event, structured mode included. The last two
// find a subject/ce-subject mismatch under the customer it is about.
func deadLetterOf(h nats.Header, data []byte, keys, ids map[string]bool) bool {
	subj := h.Get(stream.HeaderDeadSubject)
	if i := strings.LastIndexByte(subj, '.'); i >= 0 && keys[subj[i+1:]] {
		return true
	}
	for k, vs := range h {
		if strings.EqualFold(k, "ce-subject") && len(vs) > 0 && ids[vs[0]] {
			return true
		}
	}
	if e, err := stream.DecodeMsg(h, data); err == nil && e.Subject != "" && ids[e.Subject] {
		return true
	}
	return false
}

func (s deadLetterStore) Count(ctx context.Context, customers []string) (uint64, error) {
	seqs, err := s.matching(ctx, customers)
	return uint64(len(seqs)), err
}

func (s deadLetterStore) Erase(ctx context.Context, customers []string) error {
	seqs, err := s.matching(ctx, customers)
	if err != nil || len(seqs) == 0 {
		return err
	}
	st, err := s.js.Stream(ctx, stream.DeadLetterStream)
	if err != nil {
		return err
	}
	for _, seq := range seqs {
		if err := st.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("delete dead letter %d: %w", seq, err)
		}
	}
	return nil
}

// outboxStore is the projector's outbox: a work queue of warehouse rows on
// their way to ClickHouse. A message holds many customers' rows and cannot
// be edited, so Erase waits until the loader has taken every message that
// was there when it started: their rows are then in ClickHouse, whose
// tables the erasure erases next. Count counts the customers' rows in the
// waiting messages. A projector that is down makes Erase time out; the
// erasure fails and resumes at this step when run again.
type outboxStore struct {
	js      jetstream.JetStream
	stream  string
	name    string
	timeout time.Duration // default 2m
}

func (s outboxStore) Name() string { return s.name }

// outboxRows mirrors the projector's rowSet (gob matches fields by name).
type outboxRows struct {
	States      []warehouse.CustomerStateRow `json:"s,omitempty"`
	Transitions []warehouse.TransitionRow    `json:"t,omitempty"`
	Responses   []warehouse.ResponseRow      `json:"r,omitempty"`
}

func (s outboxStore) Count(ctx context.Context, customers []string) (uint64, error) {
	st, err := existingStream(ctx, s.js, s.stream)
	if st == nil || err != nil {
		return 0, err
	}
	info, err := st.Info(ctx)
	if err != nil || info.State.Msgs == 0 {
		return 0, err
	}
	want := set(customers)
	var n uint64
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // loaded meanwhile
		}
		if err != nil {
			return 0, err
		}
		var rows outboxRows
		if m.Header.Get("Journey-Rows-Encoding") == "gob" {
			err = gob.NewDecoder(bytes.NewReader(m.Data)).Decode(&rows)
		} else {
			err = json.Unmarshal(m.Data, &rows)
		}
		if err != nil {
			return 0, fmt.Errorf("outbox message %d: %w", seq, err)
		}
		for _, r := range rows.States {
			n += b2u(want[r.CustomerID])
		}
		for _, r := range rows.Transitions {
			n += b2u(want[r.CustomerID])
		}
		for _, r := range rows.Responses {
			n += b2u(want[r.CustomerID])
		}
	}
	return n, nil
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

func (s outboxStore) Erase(ctx context.Context, _ []string) error {
	st, err := existingStream(ctx, s.js, s.stream)
	if st == nil || err != nil {
		return err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return err
	}
	last := info.State.LastSeq
	timeout := s.timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	deadline := time.Now().Add(timeout)
	for {
		info, err := st.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs == 0 || info.State.FirstSeq > last {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the outbox still holds %d messages after %s: is the projector's loader running?", info.State.Msgs, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Journal keeps erasure records in a key-value bucket (history 1: an
// update replaces the value, so the ids an erasure held while it ran are
// gone once it completes).
type Journal struct{ kv jetstream.KeyValue }

// OpenJournal creates or opens the journal bucket.
func OpenJournal(ctx context.Context, js jetstream.JetStream, replicas int) (*Journal, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: JournalBucket, Description: "journey erasures: the recorded state machine of each (ids only while it runs)",
		History: 1, Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("privacy: journal bucket: %w", err)
	}
	return &Journal{kv: kv}, nil
}

// Load returns the record of erasure id, or erasure.ErrNotFound.
func (j *Journal) Load(ctx context.Context, id string) (*erasure.Record, error) {
	e, err := j.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: %q", erasure.ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	var r erasure.Record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, fmt.Errorf("privacy: journal %q: %w", id, err)
	}
	return &r, nil
}

// Save stores r.
func (j *Journal) Save(ctx context.Context, r *erasure.Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = j.kv.Put(ctx, r.ID, b)
	return err
}

// Unfinished returns the ids of erasures not complete (to resume them).
func (j *Journal) Unfinished(ctx context.Context) ([]string, error) {
	lister, err := j.kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for k := range lister.Keys() {
		r, err := j.Load(ctx, k)
		if err != nil {
			return nil, err
		}
		if r.Phase != erasure.PhaseComplete {
			out = append(out, k)
		}
	}
	return out, nil
}

// suppressor stores suppression entries in the suppression bucket.
type suppressor struct{ kv jetstream.KeyValue }

func (s suppressor) Suppress(ctx context.Context, hashes []string, at time.Time, id string) error {
	return suppression.Put(ctx, s.kv, hashes, suppression.Entry{At: at, Erasure: id})
}
