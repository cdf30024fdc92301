// Package suppression is the list of erased customers that every
// component consults: a JetStream key-value bucket keyed by the hash of
// the customer id ([Hash]: hex SHA-256), so the list itself keeps no id.
// An erasure stores the entry before it removes anything; the collector
// refuses, and the writer and projector drop, events of a listed
// customer, so no replay, redrive or late publish brings the data back.
package suppression

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the key-value bucket of suppression entries.
const Bucket = "journey_suppressed"

// Hash is the key of a customer in the bucket: hex SHA-256 of the id.
func Hash(customerID string) string {
	h := sha256.Sum256([]byte(customerID))
	return hex.EncodeToString(h[:])
}

// Entry is the value of a key: when and by which erasure the customer was
// suppressed.
type Entry struct {
	At      time.Time `json:"at"`
	Erasure string    `json:"erasure"`
}

func config(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "journey erased customers: sha256 of the customer id -> time and erasure id",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	}
}

// Open creates or opens the bucket with replicas copies (1, 3 or 5, as
// the streams; 0 means 1). Entries never expire: a suppression holds for
// as long as the customer could otherwise come back.
func Open(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, config(replicas))
	if err != nil {
		return nil, fmt.Errorf("suppression: bucket: %w", err)
	}
	return kv, nil
}

// Follow is what a consumer of the list (collector, writer, projector)
// calls at start: it binds the bucket, creating it when it does not exist
// yet (a user allowed to read it may create it, never write entries),
// and returns the [Set] once the entries stored so far are loaded. It
// fails when NATS does not answer or the user may not read the bucket;
// the caller retries.
func Follow(ctx context.Context, js jetstream.JetStream, replicas int) (*Set, error) {
	kv, err := js.KeyValue(ctx, Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, config(replicas))
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("suppression: bucket %s: %w", Bucket, err)
	}
	return Watch(ctx, kv)
}

// Put stores the entries (idempotent: a second Put overwrites with the
// same meaning).
func Put(ctx context.Context, kv jetstream.KeyValue, hashes []string, e Entry) error {
	val, err := json.Marshal(e)
	if err != nil {
		return err
	}
	for _, h := range hashes {
		if _, err := kv.Put(ctx, h, val); err != nil {
			return fmt.Errorf("suppression: put %s: %w", h, err)
		}
	}
	return nil
}

// Set is an in-memory copy of the bucket, kept current by a watch.
type Set struct {
	mu     sync.RWMutex
	hashes map[string]struct{}
	ready  chan struct{}
}

// Watch loads the bucket and follows it until ctx ends. It returns once
// the entries stored so far are loaded, so an erasure that finished
// before Watch returned is in the set.
func Watch(ctx context.Context, kv jetstream.KeyValue) (*Set, error) {
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("suppression: watch: %w", err)
	}
	s := &Set{hashes: map[string]struct{}{}, ready: make(chan struct{})}
	go s.follow(ctx, w)
	select {
	case <-s.ready:
		return s, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *Set) follow(ctx context.Context, w jetstream.KeyWatcher) {
	defer func() { _ = w.Stop() }()
	readyOnce := sync.OnceFunc(func() { close(s.ready) })
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil { // the initial values are all delivered
				readyOnce()
				continue
			}
			s.mu.Lock()
			s.hashes[e.Key()] = struct{}{}
			s.mu.Unlock()
		}
	}
}

// Has reports whether the customer is suppressed. A nil Set has no one.
func (s *Set) Has(customerID string) bool {
	if s == nil {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.hashes) == 0 {
		return false
	}
	_, ok := s.hashes[Hash(customerID)]
	return ok
}

// Add marks hashes suppressed in this copy at once (the eraser's own
// components need not wait for the watch).
func (s *Set) Add(hashes ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range hashes {
		s.hashes[h] = struct{}{}
	}
}

// Check returns nil for a customer who may have new events, or an error
// wrapping [ErrSuppressed] for an erased one. A nil Set allows everyone.
// It is the one call a decode step makes.
func (s *Set) Check(customerID string) error {
	if s.Has(customerID) {
		return fmt.Errorf("%w (customer hash %s)", ErrSuppressed, Hash(customerID))
	}
	return nil
}

// ErrSuppressed is the reason an event of an erased customer is refused.
var ErrSuppressed = errors.New("the customer was erased (right to be forgotten): new events for them are refused")
