package projection

import (
	"context"

	"github.com/klantreis/journey/pkg/touchpoint"
)

// Store keeps one record per customer with a revision for compare-and-set.
// It must be safe for concurrent use.
type Store interface {
	// Get returns the record and its revision, or an error wrapping
	// ErrNotFound.
	Get(ctx context.Context, customerID string) (*Record, uint64, error)
	// Put writes records with compare-and-set and returns their new
	// revisions in order. A lost compare-and-set is an error wrapping
	// ErrConflict; other errors are transient.
	Put(ctx context.Context, puts []Put) ([]uint64, error)
}

// Sink receives the changes of a batch for the warehouse. Writes must be
// idempotent: the same update may be written again after a failure.
type Sink interface {
	Write(ctx context.Context, updates []Update) error
}

// Emitter publishes derived events and returns once they are stored; the
// ids are deterministic, so a re-emit is dropped as a duplicate.
type Emitter interface {
	Emit(ctx context.Context, events []touchpoint.Event) error
}

// Index keeps the inactivity expiry of customers so that a restarted
// projector can rebuild its sweep schedule without reading every state.
type Index interface {
	Set(ctx context.Context, entries []Expiry) error
}
