package journeyctl

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// scan reads every message of a stream matching filters (all when empty),
// from start (zero: the beginning) up to what the stream held when the scan
// began, through an ordered consumer: no state is left on the server, and a
// broker hiccup is resumed by the client library.
func scan(ctx context.Context, js jetstream.JetStream, streamName string, filters []string, start time.Time, fn func(jetstream.Msg) error) error {
	s, err := js.Stream(ctx, streamName)
	if err != nil {
		return fmt.Errorf("journeyctl: stream %s: %w", streamName, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("journeyctl: stream %s: %w", streamName, err)
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: filters, DeliverPolicy: jetstream.DeliverAllPolicy}
	if !start.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	}
	c, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("journeyctl: read %s: %w", streamName, err)
	}
	for {
		batch, err := c.Fetch(500, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return fmt.Errorf("journeyctl: read %s: %w", streamName, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return err
			}
			if md.Sequence.Stream > last {
				return nil
			}
			if err := fn(m); err != nil {
				return err
			}
			if md.Sequence.Stream == last || md.NumPending == 0 {
				return nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("journeyctl: read %s: %w", streamName, err)
		}
		if n == 0 {
			// Nothing more matches the filter before last.
			return nil
		}
	}
}
