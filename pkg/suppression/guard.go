package suppression

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/klantreis/journey/pkg/retry"
)

// Guard is a service's view of the list: the [Set], and a counter of the
// events it turned away (journey_<service>_suppressed_total). The
// services' decode steps call [Guard.Drop] or [Guard.Check].
type Guard struct {
	set     *Set
	dropped prometheus.Counter
}

// StartGuard follows the list ([Follow]), retrying with backoff (up to 5s
// between attempts, each logged) until it is loaded or ctx ends, and
// registers the counter journey_<service>_suppressed_total with reg. It
// returns an error only when ctx ends first or the counter cannot be
// registered. A service calls it before it consumes anything, so that no
// event of an erased customer gets past it.
func StartGuard(ctx context.Context, js jetstream.JetStream, replicas int, service string, reg prometheus.Registerer, log *slog.Logger) (*Guard, error) {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "journey_" + service + "_suppressed_total",
		Help: "Events of erased customers turned away (the suppression list, docs/privacy.md)."})
	if err := reg.Register(c); err != nil {
		return nil, err
	}
	var set *Set
	err := retry.Do(ctx, retry.Policy{Initial: 200 * time.Millisecond, Max: 5 * time.Second, AttemptTimeout: 30 * time.Second,
		OnRetry: func(_ int, err error, wait time.Duration) {
			if log != nil {
				log.Warn("suppression list not loaded; retrying", "err", err, "in", wait)
			}
		}}, func(actx context.Context) error {
		// The watch lives as long as ctx, not the attempt.
		s, err := followUntil(ctx, actx, js, replicas)
		set = s
		return err
	})
	if err != nil {
		return nil, err
	}
	return &Guard{set: set, dropped: c}, nil
}

// followUntil is Follow whose initial load is bounded by attempt while the
// watch runs until ctx ends.
func followUntil(ctx, attempt context.Context, js jetstream.JetStream, replicas int) (*Set, error) {
	wctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(attempt, func() {
		if attempt.Err() == context.DeadlineExceeded {
			cancel()
		}
	})
	s, err := Follow(wctx, js, replicas)
	stop()
	if err != nil {
		cancel()
		return nil, err
	}
	return s, nil
}

// Has reports whether customerID was erased, without counting (nil: no).
func (g *Guard) Has(customerID string) bool { return g != nil && g.set.Has(customerID) }

// Drop reports whether an event of customerID must be dropped (the
// customer was erased), and counts it. A nil Guard drops nothing.
func (g *Guard) Drop(customerID string) bool {
	if g == nil || !g.set.Has(customerID) {
		return false
	}
	g.dropped.Inc()
	return true
}

// Check is Drop as an error wrapping [ErrSuppressed] (for an answer that
// says why), counted the same way.
func (g *Guard) Check(customerID string) error {
	if g == nil {
		return nil
	}
	err := g.set.Check(customerID)
	if err != nil {
		g.dropped.Inc()
	}
	return err
}
