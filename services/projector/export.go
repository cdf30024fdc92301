package projector

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/projection"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/warehouse"
)

// What a one-off projection (journeyctl rederive) needs to project exactly
// as the service does: the same stores, decoding, rows and consumers.

// OpenStateStore opens (creating it if needed) the state bucket name and
// returns the projector's store of customer records in it.
func OpenStateStore(ctx context.Context, js jetstream.JetStream, name string, replicas int, timeout time.Duration) (projection.Store, error) {
	kv, err := openBucket(ctx, js, name, "journey customer states (projector)", replicas)
	if err != nil {
		return nil, err
	}
	return &kvStore{js: js, kv: kv, subject: stream.KVKeyPrefix(name), direct: stream.KVDirectGet(name),
		timeout: timeout, maxValue: maxStateBytes(0, js.Conn())}, nil
}

// OpenIndex opens (creating it if needed) the expiry index bucket name.
func OpenIndex(ctx context.Context, js jetstream.JetStream, name string, replicas int, timeout time.Duration) (projection.Index, error) {
	kv, err := openBucket(ctx, js, name, "journey inactivity expiry index (projector)", replicas)
	if err != nil {
		return nil, err
	}
	return &kvIndex{js: js, kv: kv, subject: stream.KVKeyPrefix(name), timeout: timeout}, nil
}

// Decode turns a TOUCHPOINTS message into what the projection applies,
// or the error for which the projector dead-letters it.
func Decode(m jetstream.Msg, now time.Time) (projection.Msg, error) { return decode(m, now) }

// Rows maps a batch's updates to the projection tables' rows.
func Rows(updates []projection.Update) ([]warehouse.CustomerStateRow, []warehouse.TransitionRow, []warehouse.ResponseRow) {
	return rows(updates)
}

// ConsumerConfig is the configuration of partition part's consumer under
// the durable prefix (its name is <prefix>-p<part>), as the projector
// creates it.
func ConsumerConfig(s Settings, part int, prefix string) jetstream.ConsumerConfig {
	return stream.ProjectorPartitionConsumerConfig(prefix, part, s.AckWait, s.BatchSize)
}
