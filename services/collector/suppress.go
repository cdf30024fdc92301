package collector

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/suppression"
)

// FollowSuppression loads the suppression list (pkg/suppression), retrying
// until it is loaded or ctx ends, and from then on refuses the events of
// erased customers: 422 with reason customer_erased. Until it is loaded
// (NATS away at start) events are accepted, and the writer and projector
// drop those of erased customers.
//
// The collector refuses rather than accepting and dropping: an accepted
// event would be stored in TOUCHPOINTS, where the erased customer's data
// would sit again until the stream's retention removes it, and a 2xx for
// an event journey then drops would be an accepted event silently lost.
// A refusal keeps the data out and tells the sender why, so that it stops.
func (c *Collector) FollowSuppression(ctx context.Context, js jetstream.JetStream, replicas int) {
	g, err := suppression.StartGuard(ctx, js, replicas, "collector", c.health.Registry, c.log)
	if err != nil {
		return // ctx ended
	}
	c.supp.Store(g)
}
