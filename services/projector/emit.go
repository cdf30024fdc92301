package projector

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
)

// derivedEmitter publishes derived events on the DERIVED stream in binary
// mode with Nats-Msg-Id = MsgID(source, id), asynchronously, and waits for
// every ack: an event emitted again (a replay) inside the duplicate window
// is dropped by the server.
type derivedEmitter struct {
	js      jetstream.JetStream
	timeout time.Duration
	// rules, when set, is the rules version (its name, e.g. v2) whose
	// workers emit, sent as the Journey-Rules header: an operator (and the
	// re-derive test) can tell which version emitted a derived event.
	rules string
}

// HeaderRules names the rules version that emitted a derived event.
const HeaderRules = "Journey-Rules"

func (d *derivedEmitter) Emit(ctx context.Context, events []touchpoint.Event) error {
	futures := make([]jetstream.PubAckFuture, len(events))
	for i := range events {
		e := &events[i]
		m := stream.NewMsg(stream.DerivedSubject(e.Kind(), e.Subject), e)
		if d.rules != "" {
			m.Header.Set(HeaderRules, d.rules)
		}
		f, err := d.js.PublishMsgAsync(m)
		if err != nil {
			return fmt.Errorf("projector: emit %s: %w", e.Type, err)
		}
		futures[i] = f
	}
	return awaitAcks(ctx, futures, d.timeout, "emit")
}

// awaitAcks waits until the stream has stored every published message, at
// most timeout for all of them together; the first failure is returned,
// named after what was written.
func awaitAcks(ctx context.Context, futures []jetstream.PubAckFuture, timeout time.Duration, what string) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("projector: %s: %w", what, err)
		case <-timer.C:
			return fmt.Errorf("projector: %s: no ack within %s", what, timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
