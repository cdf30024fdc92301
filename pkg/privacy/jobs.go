package privacy

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/opsjob"
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
