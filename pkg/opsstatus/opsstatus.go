// Package opsstatus reads what an operator asks first: how full each
// stream is, how far behind each durable consumer is, how fast it drains
// and how many dead letters each consumer left. It uses only JetStream's
// read-only info API (stream info, consumer list and info), so a service
// with no right to publish or to create consumers, such as the API, can
// show it. journeyctl status adds what needs more rights (lag per
// partition of a consumer that reads them all).
package opsstatus

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream is one stream's state.
type Stream struct {
	Name      string `json:"name"`
	Messages  uint64 `json:"messages"`
	Bytes     uint64 `json:"bytes"`
	FirstSeq  uint64 `json:"first_seq"`
	LastSeq   uint64 `json:"last_seq"`
	Consumers int    `json:"consumers"`
}

// Consumer is one durable consumer's lag and drain rate.
type Consumer struct {
	Stream string `json:"stream"`
	Name   string `json:"name"`
	// Lag is what the consumer has not acknowledged yet: the messages it
	// has not been given plus those given and not acknowledged.
	Lag uint64 `json:"lag"`
	// Acked is the consumer's acknowledged floor (consumer sequence):
	// its rise between two snapshots is the drain rate.
	Acked uint64 `json:"acked_consumer_seq"`
	// RatePerSec is the drain rate since the previous snapshot (0 without
	// one).
	RatePerSec float64 `json:"drain_rate_per_sec"`
	// ETASeconds is Lag / RatePerSec: 0 with no lag, -1 when there is lag
	// and nothing drained since the previous snapshot (stalled, stopped, or
	// no previous snapshot).
	ETASeconds float64 `json:"eta_seconds"`
}

// Snapshot is the state at one moment.
type Snapshot struct {
	At        time.Time  `json:"at"`
	Streams   []Stream   `json:"streams"`
	Consumers []Consumer `json:"consumers"`
	// DeadLetters counts the messages of the dead-letter stream per
	// consumer that wrote them (the last token of the subject).
	DeadLetters map[string]uint64 `json:"dead_letters"`
	// Missing names the streams that do not exist (yet).
	Missing []string `json:"missing_streams,omitempty"`
}

// Reader reads snapshots. The zero value is not usable: set JS and Streams.
type Reader struct {
	JS jetstream.JetStream
	// Streams to report, with the consumers of each.
	Streams []string
	// DeadLetterStream, when set, is counted per subject for DeadLetters
	// (it should be one of Streams); its consumers are not listed (no
	// service consumes it durably).
	DeadLetterStream string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Read takes a snapshot and, when prev is not nil, the drain rates since
// prev. A stream that does not exist is listed in Missing; any other
// error (the server unreachable, a permission refused) is returned.
func (r Reader) Read(ctx context.Context, prev *Snapshot) (Snapshot, error) {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	snap := Snapshot{At: now(), DeadLetters: map[string]uint64{}}
	for _, name := range r.Streams {
		s, err := r.JS.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			snap.Missing = append(snap.Missing, name)
			continue
		}
		if err != nil {
			return Snapshot{}, fmt.Errorf("opsstatus: stream %s: %w", name, err)
		}
		if err := r.readStream(ctx, s, &snap); err != nil {
			return Snapshot{}, err
		}
	}
	sort.Slice(snap.Consumers, func(i, j int) bool {
		a, b := snap.Consumers[i], snap.Consumers[j]
		return a.Stream < b.Stream || a.Stream == b.Stream && a.Name < b.Name
	})
	snap.rates(prev)
	return snap, nil
}

func (r Reader) readStream(ctx context.Context, s jetstream.Stream, snap *Snapshot) error {
	name := s.CachedInfo().Config.Name
	var opts []jetstream.StreamInfoOpt
	if name == r.DeadLetterStream {
		opts = append(opts, jetstream.WithSubjectFilter(">"))
	}
	info, err := s.Info(ctx, opts...)
	if err != nil {
		return fmt.Errorf("opsstatus: stream %s: %w", name, err)
	}
	snap.Streams = append(snap.Streams, Stream{Name: name, Messages: info.State.Msgs, Bytes: info.State.Bytes,
		FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq, Consumers: info.State.Consumers})
	if name == r.DeadLetterStream {
		for subj, n := range info.State.Subjects {
			consumer := subj[strings.LastIndexByte(subj, '.')+1:]
			snap.DeadLetters[consumer] += n
		}
		return nil
	}
	lister := s.ListConsumers(ctx)
	for ci := range lister.Info() {
		if ci.Config.Durable == "" {
			continue // ephemeral: a reader of the moment, not a service
		}
		snap.Consumers = append(snap.Consumers, Consumer{Stream: name, Name: ci.Name,
			Lag: ci.NumPending + uint64(ci.NumAckPending), Acked: ci.AckFloor.Consumer})
	}
	if err := lister.Err(); err != nil {
		return fmt.Errorf("opsstatus: consumers of %s: %w", name, err)
	}
	return nil
}

// rates fills RatePerSec and ETASeconds from prev.
func (s *Snapshot) rates(prev *Snapshot) {
	before := map[string]Consumer{}
	var dt float64
	if prev != nil {
		dt = s.At.Sub(prev.At).Seconds()
		for _, c := range prev.Consumers {
			before[c.Stream+"/"+c.Name] = c
		}
	}
	for i := range s.Consumers {
		c := &s.Consumers[i]
		if b, ok := before[c.Stream+"/"+c.Name]; ok && dt > 0 && c.Acked >= b.Acked {
			c.RatePerSec = float64(c.Acked-b.Acked) / dt
		}
		switch {
		case c.Lag == 0:
			c.ETASeconds = 0
		case c.RatePerSec > 0:
			c.ETASeconds = float64(c.Lag) / c.RatePerSec
		default:
			c.ETASeconds = -1
		}
	}
}
