package stream

import (
	"context"
	"errors"
	"fmt"
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

// TouchpointConfig is the touchpoint stream's configuration.
func (t Topology) TouchpointConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        TouchpointStream,
		Description: "journey touchpoints: facts about customers, partitioned by customer",
		Subjects:    []string{touchpointPrefix + "*.*"},
		SubjectTransform: &jetstream.SubjectTransformConfig{
			Source:      touchpointPrefix + "*.*",
			Destination: touchpointPrefix + "{{partition(" + strconv.Itoa(t.Partitions) + ",2)}}.{{wildcard(1)}}.{{wildcard(2)}}",
		},
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.LimitsPolicy,
		Discard:    jetstream.DiscardOld,
		MaxAge:     t.MaxAge,
		MaxBytes:   t.MaxBytes,
		MaxMsgSize: 1 << 20,
		Duplicates: t.DuplicateWindow,
		Replicas:   t.Replicas,
		// Purge by customer subject is the right to be forgotten in the
		// stream; deletes stay allowed for it.
		AllowDirect: true,
	}
}

// DerivedConfig is the derived-events stream's configuration.
func (t Topology) DerivedConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        DerivedStream,
		Description: "journey derived events: stage, satisfaction and at-risk changes",
		Subjects:    []string{derivedPrefix + "*.*"},
		Storage:     jetstream.FileStorage,
		MaxAge:      t.DerivedMaxAge,
		Duplicates:  t.DuplicateWindow,
		Replicas:    t.Replicas,
		AllowDirect: true,
	}
}

// DeadLetterConfig is the dead-letter stream's configuration.
func (t Topology) DeadLetterConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        DeadLetterStream,
		Description: "journey dead letters: messages a consumer could not process, with the reason in headers",
		Subjects:    []string{deadLetterPrefix + "*"},
		Storage:     jetstream.FileStorage,
		MaxAge:      t.DerivedMaxAge,
		Duplicates:  t.DuplicateWindow,
		Replicas:    t.Replicas,
	}
}

// Ensure creates or updates the three streams so that they match t. It is
// idempotent and safe to call from several services at once.
func (t Topology) Ensure(ctx context.Context, js jetstream.JetStream) error {
	if err := t.Validate(); err != nil {
		return err
	}
	for _, cfg := range []jetstream.StreamConfig{t.TouchpointConfig(), t.DerivedConfig(), t.DeadLetterConfig()} {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("stream: ensure %s: %w", cfg.Name, err)
		}
	}
	return nil
}
