package journeyctl

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/ops"
)

// The writers take turns for their identity check and insert into events
// through a key in a KV bucket (services/writer/fence.go: bucket
// JOURNEY_WRITER_FENCE, key "events", created by the holder, deleted on
// release, renewed while held, expiring with the bucket's TTL). The swap
// takes that turn too: while journeyctl holds it no fenced writer judges
// or inserts, so the renames and the first catch-up pass see a still
// table. The writers' messages wait meanwhile; nothing is dropped.
const (
	writerFenceBucket = "JOURNEY_WRITER_FENCE"
	writerFenceKey    = "events"
)

// writerFence is a held fence; release ends the hold.
type writerFence struct {
	kv   jetstream.KeyValue
	rev  uint64
	stop context.CancelFunc
	done chan struct{}
}

// takeWriterFence waits (up to limit) for the writers' fence and holds
// it, renewing it until release. It returns nil, nil when no writer uses
// a fence (no bucket).
func takeWriterFence(ctx context.Context, js jetstream.JetStream, limit time.Duration) (*writerFence, error) {
	kv, err := js.KeyValue(ctx, writerFenceBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("journeyctl: writer fence: %w", err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("journeyctl: writer fence: %w", err)
	}
	ttl := st.TTL()
	if ttl <= 0 {
		ttl = 15 * time.Second
	}
	id := []byte("journeyctl-rebuild-" + newID())
	deadline := time.Now().Add(limit)
	var announced time.Time
	for {
		rev, err := kv.Create(ctx, writerFenceKey, id)
		if err == nil {
			f := &writerFence{kv: kv, rev: rev, done: make(chan struct{})}
			var rctx context.Context
			rctx, f.stop = context.WithCancel(context.WithoutCancel(ctx))
			go f.renew(rctx, id, ttl/10)
			return f, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("journeyctl: writer fence: %w", err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("journeyctl: the writers' fence was not free within %s", limit)
		}
		// Say we wait, so that a writer with a backlog lets us have a turn.
		if time.Since(announced) > 100*time.Millisecond {
			if _, err := kv.Put(ctx, writerFenceKey+".waiting", id); err == nil {
				announced = time.Now()
			}
		}
		select {
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (f *writerFence) renew(ctx context.Context, id []byte, every time.Duration) {
	defer close(f.done)
	ops.Every(ctx, every, func(ctx context.Context) {
		if rev, err := f.kv.Update(ctx, writerFenceKey, id, f.rev); err == nil {
			f.rev = rev
		}
	})
}

// release deletes the key (a failed delete makes the writers wait for
// its expiry). Safe on nil and twice.
func (f *writerFence) release() {
	if f == nil || f.stop == nil {
		return
	}
	f.stop()
	f.stop = nil
	<-f.done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = f.kv.Delete(ctx, writerFenceKey, jetstream.LastRevision(f.rev))
}
