package stream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Topology configures the streams. Services embed it in their config; the
// envconfig names are JOURNEY_STREAM_*.
type Topology struct {
	// Partitions is N in partition(N, customer-key): how many ways consumers
	// can split the touchpoint stream. Changing it re-partitions only events
	// stored afterwards, so pick it once (default 8).
	Partitions int `envconfig:"PARTITIONS" default:"8"`
	// DuplicateWindow: a message id seen again within it is dropped by the
	// server (default 2m).
	DuplicateWindow time.Duration `envconfig:"DUPLICATE_WINDOW" default:"2m"`
	// Replicas per stream: 1 locally, 3 in a cluster.
	Replicas int `envconfig:"REPLICAS" default:"1"`
	// MaxAge of touchpoints in the stream; 0 keeps them forever (the stream
	// is the replay source of truth).
	MaxAge time.Duration `envconfig:"MAX_AGE" default:"0"`
	// MaxBytes of the touchpoint stream; -1 is unlimited.
	MaxBytes int64 `envconfig:"MAX_BYTES" default:"-1"`
	// DerivedMaxAge bounds derived events and dead letters (default 30 days).
	DerivedMaxAge time.Duration `envconfig:"DERIVED_MAX_AGE" default:"720h"`
}

// ErrTopology marks a bad topology setting.
var ErrTopology = errors.New("stream: bad topology")

// DefaultTopology is the local default, equal to the envconfig defaults.
func DefaultTopology() Topology {
	return Topology{Partitions: 8, DuplicateWindow: 2 * time.Minute, Replicas: 1, MaxBytes: -1, DerivedMaxAge: 30 * 24 * time.Hour}
}

// Validate reports a setting the server would reject, with its name.
func (t Topology) Validate() error {
	switch {
	case t.Partitions < 1 || t.Partitions > 1024:
		return fmt.Errorf("%w: JOURNEY_STREAM_PARTITIONS must be 1..1024, got %d", ErrTopology, t.Partitions)
	case t.DuplicateWindow < time.Second:
		return fmt.Errorf("%w: JOURNEY_STREAM_DUPLICATE_WINDOW must be at least 1s, got %s", ErrTopology, t.DuplicateWindow)
	case t.Replicas != 1 && t.Replicas != 3 && t.Replicas != 5:
		return fmt.Errorf("%w: JOURNEY_STREAM_REPLICAS must be 1, 3 or 5, got %d", ErrTopology, t.Replicas)
	}
	return nil
}

// maxMsgSize bounds a touchpoint and so a replayed copy of one (1 MiB).
const maxMsgSize = 1 << 20

// streamConfig is what every journey stream shares: file storage, one
// subject pattern, messages kept for maxAge, and the topology's duplicate
// window and replicas.
func (t Topology) streamConfig(name, description, subject string, maxAge time.Duration) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        name,
		Description: description,
		Subjects:    []string{subject},
		Storage:     jetstream.FileStorage,
		MaxAge:      maxAge,
		Duplicates:  t.DuplicateWindow,
		Replicas:    t.Replicas,
	}
}

// TouchpointConfig is the touchpoint stream's configuration.
func (t Topology) TouchpointConfig() jetstream.StreamConfig {
	c := t.streamConfig(TouchpointStream, "journey touchpoints: facts about customers, partitioned by customer",
		touchpointPrefix+"*.*", t.MaxAge)
	c.SubjectTransform = &jetstream.SubjectTransformConfig{
		Source:      touchpointPrefix + "*.*",
		Destination: touchpointPrefix + "{{partition(" + strconv.Itoa(t.Partitions) + ",2)}}.{{wildcard(1)}}.{{wildcard(2)}}",
	}
	c.Retention = jetstream.LimitsPolicy
	c.Discard = jetstream.DiscardOld
	c.MaxBytes = t.MaxBytes
	c.MaxMsgSize = maxMsgSize
	// Purge by customer subject is the right to be forgotten in the
	// stream; deletes stay allowed for it.
	c.AllowDirect = true
	return c
}

// DerivedConfig is the derived-events stream's configuration.
func (t Topology) DerivedConfig() jetstream.StreamConfig {
	c := t.streamConfig(DerivedStream, "journey derived events: stage, satisfaction and at-risk changes",
		derivedPrefix+"*.*", t.DerivedMaxAge)
	c.AllowDirect = true
	return c
}

// DeadLetterConfig is the dead-letter stream's configuration.
func (t Topology) DeadLetterConfig() jetstream.StreamConfig {
	return t.streamConfig(DeadLetterStream, "journey dead letters: messages a consumer could not process, with the reason in headers",
		deadLetterPrefix+"*", t.DerivedMaxAge)
}

// Ensure creates or updates the four streams (touchpoints, derived, dead
// letters, replay) so that they match t. It is
// idempotent and safe to call from several services at once. A stream
// that already matches is only read (STREAM.INFO), so a service whose NATS
// user may not manage streams starts once an admin has created them; one
// that differs is updated, which such a user is refused (the error says so).
func (t Topology) Ensure(ctx context.Context, js jetstream.JetStream) error {
	if err := t.Validate(); err != nil {
		return err
	}
	for _, cfg := range []jetstream.StreamConfig{t.TouchpointConfig(), t.DerivedConfig(), t.DeadLetterConfig(), t.ReplayConfig()} {
		if s, err := js.Stream(ctx, cfg.Name); err == nil && sameStream(cfg, s.CachedInfo().Config) {
			continue
		} else if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("stream: ensure %s: read its info: %w", cfg.Name, err)
		}
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("stream: ensure %s (create or update; a user without the right needs an admin to do it, see deploy/nats): %w", cfg.Name, err)
		}
	}
	return nil
}

// sameStream reports whether the server's configuration have already is
// what want asks for, in every field the topology sets (the server fills
// in defaults for the others: -1 for an unset limit).
func sameStream(want, have jetstream.StreamConfig) bool {
	limit := func(v int64) int64 {
		if v == 0 {
			return -1
		}
		return v
	}
	transform := func(c *jetstream.SubjectTransformConfig) jetstream.SubjectTransformConfig {
		if c == nil {
			return jetstream.SubjectTransformConfig{}
		}
		return *c
	}
	return slices.Equal(want.Subjects, have.Subjects) && transform(want.SubjectTransform) == transform(have.SubjectTransform) &&
		want.Description == have.Description && want.Storage == have.Storage && want.Retention == have.Retention &&
		want.Discard == have.Discard && want.MaxAge == have.MaxAge && limit(want.MaxBytes) == limit(have.MaxBytes) &&
		limit(int64(want.MaxMsgSize)) == limit(int64(have.MaxMsgSize)) && want.Duplicates == have.Duplicates &&
		want.Replicas == have.Replicas && want.AllowDirect == have.AllowDirect
}
