package projector

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/stream"
)

// giveBack ends a partition's pull. On shutdown, when a group member
// hands the partition over, or when the pull went silent and is issued
// again, the messages already delivered to the iterator but not yet in a
// batch are negatively acknowledged (stream.HandBack): the next pull, this
// one's or the next owner's, gets them at once. Applying an event twice
// changes nothing (the projector is idempotent per (source, id)).
func (w *worker) giveBack(ctx context.Context, it jetstream.MessagesContext, silent bool) {
	if ctx.Err() == nil && !silent {
		it.Stop() // the iterator broke; the loop pulls again
		return
	}
	if n := stream.HandBack(it); n > 0 {
		w.log.Info("handed back buffered events", "events", n)
	}
}
