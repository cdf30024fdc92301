package projector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/projection"
	"github.com/klantreis/journey/pkg/stream"
)

// streamHistory reads a customer's events from TOUCHPOINTS for a
// re-derive after a correction (projection.History): the stream is the
// source of truth and holds every version. It walks the customer's
// subjects (stream.CustomerFilter) with direct gets, "the next message at
// or after sequence n on these subjects", up to the batch's last sequence: one request per event of the customer, no
// consumer, so the projector needs no right to create consumers beyond
// its own (only $JS.API.DIRECT.GET.TOUCHPOINTS, a read). A message that
// does not validate is left out: the consumer dead-lettered it when it
// arrived.
type streamHistory struct {
	js      jetstream.JetStream
	timeout time.Duration
}

// NewStreamHistory is the projection.History of TOUCHPOINTS, for every
// projector of the rules (the live one and a re-derive's).
func NewStreamHistory(js jetstream.JetStream, timeout time.Duration) projection.History {
	return &streamHistory{js: js, timeout: timeout}
}

func (h *streamHistory) Events(ctx context.Context, customerID string, upTo uint64) ([]journey.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, 4*max(h.timeout, 5*time.Second))
	defer cancel()
	s, err := h.js.Stream(ctx, stream.TouchpointStream)
	if err != nil {
		return nil, fmt.Errorf("projector: history: %w", err)
	}
	info := s.CachedInfo()
	last := min(info.State.LastSeq, upTo)
	filter := stream.CustomerFilter(customerID)
	now := time.Now()
	var out []journey.Event
	for seq := max(info.State.FirstSeq, 1); seq <= last; {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("projector: history of %q at %d: %w", customerID, seq, err)
		}
		if m.Sequence > last {
			break
		}
		if e, p, err := decodeEvent(m.Subject, m.Header, m.Data, now); err == nil {
			out = append(out, journey.FromTouchpoint(&e, &p, 0))
		}
		seq = m.Sequence + 1
	}
	return out, nil
}
