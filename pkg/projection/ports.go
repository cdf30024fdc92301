package projection

import (
	"context"

	"github.com/klantreis/journey/pkg/journey"
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

// Encoder is a [Store] that can refuse a record it cannot hold. Process
// and Sweep ask it about every changed record before they write anything
// of the batch: a record the store refuses (an error wrapping
// [ErrTooLarge]) makes its customer [Rejected] while the rest of the batch
// is committed. The bytes it returns reach Put in [Put.Data]; it may
// return none (nil, nil) for a record certain to fit (see [SizeBound]),
// and Put encodes that one itself. Any other error fails the batch.
type Encoder interface {
	Encode(rec *Record) ([]byte, error)
}

// BatchGetter is a [Store] that can read many records in one round trip.
// GetMany returns the records it found by customer id; an id absent from
// the result and from missing is known not to exist. Ids in missing were
// not answered (a truncated reply) and must be read one by one. An error
// means nothing is known; the caller falls back to Get.
type BatchGetter interface {
	GetMany(ctx context.Context, customerIDs []string) (found map[string]Got, missing []string, err error)
}

// Got is a record read by [BatchGetter.GetMany] with its revision.
type Got struct {
	Record *Record
	Rev    uint64
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

// History reads a customer's events from the log: every version of every
// event of theirs it holds up to stream sequence upTo, in any order. A
// correction (an event with a revision above the one the state holds)
// re-derives the customer from it (journey.Rulebook.Rebuild). An error is
// transient: the batch is retried.
type History interface {
	Events(ctx context.Context, customerID string, upTo uint64) ([]journey.Event, error)
}
