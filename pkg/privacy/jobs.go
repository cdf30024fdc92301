package privacy

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/expiryindex"
	"github.com/klantreis/journey/pkg/opsjob"
	"github.com/klantreis/journey/pkg/suppression"
)

// jobStore redacts the customers from the ops jobs (pkg/opsjob): a job's
// arguments (replay --customer) and result (a re-derive diff's samples)
// may name them. The jobs stay, with each mention replaced by a hash
// prefix, so that the other customers' operations keep their record.
type jobStore struct{ js jetstream.JetStream }

func (s jobStore) Name() string { return "stream KV_" + opsjob.Bucket }

func (s jobStore) store(ctx context.Context) (*opsjob.Store, error) {
	q, err := opsjob.Bind(ctx, s.js)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil // no job was ever asked for
	}
	return q, err
}

func (s jobStore) Count(ctx context.Context, customers []string) (uint64, error) {
	q, err := s.store(ctx)
	if q == nil || err != nil {
		return 0, err
	}
	n, err := q.Redact(ctx, customers, true)
	return uint64(n), err
}

func (s jobStore) Erase(ctx context.Context, customers []string) error {
	q, err := s.store(ctx)
	if q == nil || err != nil {
		return err
	}
	_, err = q.Redact(ctx, customers, false)
	return err
}

// replayStore redacts the customers from the replays' records in the ops
// bucket (keys "replay.<id>", services/journeyctl): a replay of named
// customers keeps its selection there so that it can resume. The record
// stays, with each mention replaced by a hash prefix, and the bucket's
// older revisions of it are purged; a replay still running with the old
// record stops at its next checkpoint (its compare-and-set fails).
type replayStore struct{ js jetstream.JetStream }

// replayKeys are the replay records' keys in [opsBucket].
const replayKeys = "replay.>"

func (s replayStore) Name() string { return "stream KV_" + opsBucket + " (" + replayKeys + ")" }

func (s replayStore) redact(ctx context.Context, customers []string, dryRun bool) (int, error) {
	n, err := suppression.RedactKV(ctx, s.js, opsBucket, customers, dryRun, replayKeys)
	if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil // no replay or rules version was ever recorded
	}
	return n, err
}

func (s replayStore) Count(ctx context.Context, customers []string) (uint64, error) {
	n, err := s.redact(ctx, customers, true)
	return uint64(n), err
}

func (s replayStore) Erase(ctx context.Context, customers []string) error {
	_, err := s.redact(ctx, customers, false)
	return err
}

// shardStore removes the customers from the expiry index's shards (pkg/
// expiryindex): a projector in checkpoint mode keeps a partition's
// expiries in shards of many customers each, which a key delete cannot
// reach. A shard keeps its other customers; older revisions are purged.
type shardStore struct {
	js     jetstream.JetStream
	bucket string
}

func (s shardStore) Name() string { return "stream KV_" + s.bucket + " (shards)" }

func (s shardStore) rewrite(ctx context.Context, customers []string, dryRun bool) (int, error) {
	n, err := suppression.RewriteKV(ctx, s.js, s.bucket, dryRun, func(v []byte) ([]byte, error) {
		out, _, err := expiryindex.Without(v, customers)
		return out, err
	}, expiryindex.AllShards)
	if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil // no projector ran with this bucket
	}
	return n, err
}

func (s shardStore) Count(ctx context.Context, customers []string) (uint64, error) {
	n, err := s.rewrite(ctx, customers, true)
	return uint64(n), err
}

func (s shardStore) Erase(ctx context.Context, customers []string) error {
	_, err := s.rewrite(ctx, customers, false)
	return err
}
