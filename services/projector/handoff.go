package projector

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// giveBack ends a partition's pull. On shutdown, or when a group member
// hands the partition over, the messages already delivered to the
// iterator but not yet in a batch are negatively acknowledged: the next
// owner gets them at once instead of after AckWait. Applying an event
// twice changes nothing (the projector is idempotent per (source, id)),
// and a lost Nak only means the AckWait wait.
func (w *worker) giveBack(ctx context.Context, it jetstream.MessagesContext) {
	if ctx.Err() == nil {
		it.Stop() // the iterator broke; the loop pulls again
		return
	}
	it.Drain()
	n := 0
	for {
		m, err := it.Next(jetstream.NextMaxWait(200 * time.Millisecond))
		if err != nil {
			break
		}
		_ = m.Nak()
		n++
	}
	if n > 0 {
		w.log.Info("handed back buffered events", "events", n)
	}
}
