package warehouse

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klantreis/journey/pkg/retry"
)

// ErrNotConnected is what [Connection.Err] says while ClickHouse has not
// been reached yet.
var ErrNotConnected = errors.New("warehouse: clickhouse not connected yet")

// ConnectOptions says how [Connect] retries.
type ConnectOptions struct {
	// Max caps the backoff between attempts (default 10s). It starts at
	// 100ms, with jitter (see [retry.Backoff]).
	Max time.Duration
	// OnRetry, when set, is called after each failed attempt with its
	// error and the wait before the next one: for logs and readiness.
	OnRetry func(err error, wait time.Duration)
}

// Connection opens ClickHouse and applies the migrations in the
// background, retrying until it works, and then holds the connection: a
// service starts, and keeps serving what it can, while ClickHouse is down.
type Connection struct {
	db   atomic.Pointer[DB]
	done chan struct{}
	mu   sync.Mutex
	err  error
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// Connect starts connecting to cfg: [Open] then [DB.Migrate], retried
// with backoff until they succeed, the configuration is bad (an error
// wrapping [ErrConfig], which is final) or ctx ends. It returns at once.
func Connect(ctx context.Context, cfg Config, opts ConnectOptions) *Connection {
	ctx, stop := context.WithCancel(ctx)
	c := &Connection{done: make(chan struct{}), err: ErrNotConnected, stop: stop}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(c.done)
		err := retry.Do(ctx, retry.Policy{Max: opts.Max,
			Permanent: func(err error) bool { return errors.Is(err, ErrConfig) },
			OnRetry: func(_ int, err error, wait time.Duration) {
				c.setErr(err)
				if opts.OnRetry != nil {
					opts.OnRetry(err, wait)
				}
			}}, func(ctx context.Context) error {
			db, err := Open(ctx, cfg)
			if err != nil {
				return err
			}
			if _, err := db.Migrate(ctx); err != nil {
				db.Close()
				return err
			}
			c.db.Store(db)
			return nil
		})
		if err == nil || !errors.Is(err, context.Canceled) {
			c.setErr(err)
		}
	}()
	return c
}

func (c *Connection) setErr(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
}

// DB is the open, migrated database, or nil until then.
func (c *Connection) DB() *DB { return c.db.Load() }

// Done is closed once connecting has ended: DB is set, or Err says why not.
func (c *Connection) Done() <-chan struct{} { return c.done }

// Err is nil once connected; before, the last attempt's error (at first
// [ErrNotConnected]); after a bad configuration, that error.
func (c *Connection) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Wait blocks until connecting has ended or ctx ends, and returns the
// database or why there is none.
func (c *Connection) Wait(ctx context.Context) (*DB, error) {
	select {
	case <-c.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if db := c.DB(); db != nil {
		return db, nil
	}
	return nil, c.Err()
}

// Close stops connecting, waits for the attempt in hand and closes the
// database if it was opened.
func (c *Connection) Close() {
	c.stop()
	c.wg.Wait()
	if db := c.DB(); db != nil {
		db.Close()
	}
}
