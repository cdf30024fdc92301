package writer

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/ops"
	"github.com/klantreis/journey/pkg/retry"
)

// The identity check and the insert after it must not interleave with
// another writer's check and insert into the same table: two writers
// holding copies of one event at once (a live consumer and a replay, or
// two publishes without Nats-Msg-Id) would both find it absent and both
// store it. ClickHouse has no transactions, so the writers take turns
// through a fence: one key per table in a JetStream KV bucket, created by
// the holder, renewed while held and deleted on release. A holder that
// dies leaves a key that expires with the bucket's MaxAge.

// FenceBucket is the KV bucket that holds the writers' fences.
const FenceBucket = "JOURNEY_WRITER_FENCE"

var errFenceLost = errors.New("writer: the fence was lost before the insert")

// fence is one table's turn-taking between writers. One goroutine (the
// inserter) uses it.
type fence struct {
	kv    jetstream.KeyValue
	key   string
	ttl   time.Duration
	limit time.Duration // a hold confirmed longer ago may be gone before an insert ends
	log   *slog.Logger
	id    []byte

	mu        sync.Mutex
	rev       uint64
	confirmed time.Time
	stop      context.CancelFunc
	done      chan struct{}
}

func openFence(ctx context.Context, js jetstream.JetStream, table string, ttl, insertTimeout time.Duration, replicas int, log *slog.Logger) (*fence, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      FenceBucket,
		Description: "journey writers take turns per table: identity check, then insert",
		History:     1,
		TTL:         ttl,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("writer: fence bucket: %w", err)
	}
	var b [8]byte
	_, _ = crand.Read(b[:])
	// Renewed every ttl/10; an insert may start while the last renewal is
	// younger than what is left of the ttl after the insert's timeout.
	return &fence{kv: kv, key: table, ttl: ttl, limit: ttl - insertTimeout - ttl/10, log: log, id: []byte(hex.EncodeToString(b[:]))}, nil
}

// acquire waits until this writer holds the fence, then renews it in the
// background until release. While it waits it says so under the key's
// ".waiting" entry, so that a writer with a backlog, which would win every
// race for the key, lets it have a turn.
func (f *fence) acquire(ctx context.Context, bo *retry.Backoff) error {
	var announced time.Time
	for {
		start := time.Now()
		rev, err := f.kv.Create(ctx, f.key, f.id)
		if err == nil {
			f.hold(rev, start)
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			f.log.Warn("fence not taken; retrying", "table", f.key, "err", err)
			if !bo.Wait(ctx) {
				return ctx.Err()
			}
			continue
		}
		if time.Since(announced) > waitingFresh/2 {
			if _, err := f.kv.Put(ctx, f.key+".waiting", f.id); err == nil {
				announced = time.Now()
			}
		}
		// Another writer's turn: ask again soon (its turn is one batch).
		if !retry.Sleep(ctx, 5*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// waitingFresh is how long a ".waiting" entry counts; waiters renew it
// twice as often.
const waitingFresh = 200 * time.Millisecond

// yieldFor is how long a writer that released the fence stays away when
// another one waits: several of the waiter's 5 ms polls.
const yieldFor = 25 * time.Millisecond

// contended reports whether another writer waits for the fence.
func (f *fence) contended(ctx context.Context) bool {
	e, err := f.kv.Get(ctx, f.key+".waiting")
	return err == nil && string(e.Value()) != string(f.id) && time.Since(e.Created()) < waitingFresh
}

func (f *fence) hold(rev uint64, at time.Time) {
	ctx, cancel := context.WithCancel(context.Background())
	f.mu.Lock()
	f.rev, f.confirmed, f.stop, f.done = rev, at, cancel, make(chan struct{})
	f.mu.Unlock()
	go f.renew(ctx)
}

func (f *fence) renew(ctx context.Context) {
	defer close(f.done)
	ops.Every(ctx, f.ttl/10, func(ctx context.Context) {
		f.mu.Lock()
		rev := f.rev
		f.mu.Unlock()
		at := time.Now()
		rctx, cancel := context.WithTimeout(ctx, f.ttl/10)
		nrev, err := f.kv.Update(rctx, f.key, f.id, rev)
		cancel()
		if err != nil {
			f.log.Warn("fence not renewed", "table", f.key, "err", err)
			return
		}
		f.mu.Lock()
		f.rev, f.confirmed = nrev, at
		f.mu.Unlock()
	})
}

// held reports whether an insert that starts now ends before the fence
// could have expired.
func (f *fence) held() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stop != nil && time.Since(f.confirmed) < f.limit
}

// release ends the hold. A delete that fails only makes the next writer
// wait for the key to expire.
func (f *fence) release() {
	f.mu.Lock()
	stop, done := f.stop, f.done
	f.stop = nil
	f.mu.Unlock()
	if stop == nil {
		return
	}
	stop()
	<-done
	f.mu.Lock()
	rev := f.rev
	f.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), f.ttl/5)
	defer cancel()
	if err := f.kv.Delete(ctx, f.key, jetstream.LastRevision(rev)); err != nil {
		f.log.Warn("fence not released; the next writer waits for it to expire", "table", f.key, "err", err)
		return
	}
	if f.contended(ctx) {
		time.Sleep(yieldFor)
	}
}
