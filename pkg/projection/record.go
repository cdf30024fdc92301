package projection

import (
	"errors"
	"time"

	"github.com/klantreis/journey/pkg/journey"
)

// Record is what the store keeps per customer: the rules' state and the
// projection's bookkeeping.
type Record struct {
	State *journey.State `json:"state"`
	// LastSeq is the highest stream sequence applied. Redelivered events
	// are no-ops by the rules (facts merge idempotently), so LastSeq is not
	// a filter: an event below it that the state lacks (a nak'd batch
	// redelivered after later ones) is still applied.
	LastSeq uint64 `json:"last_seq"`
	// Bump counts writes since LastSeq last grew (sweeps, late redeliveries),
	// so that [Record.Version] grows with every write.
	Bump uint32 `json:"bump,omitempty"`
}

// Version orders the writes of one customer: it grows with every write and
// is the same when the same events are replayed in stream order, so a
// replay rewrites warehouse rows instead of outranking them.
func (r *Record) Version() uint64 { return r.LastSeq<<16 | uint64(min(r.Bump, 0xffff)) }

// ErrNotFound is returned by a [Store] for a customer it does not hold.
var ErrNotFound = errors.New("projection: customer not found")

// ErrConflict is returned by a [Store] when a compare-and-set lost: another
// writer changed the customer since it was read.
var ErrConflict = errors.New("projection: concurrent update")

// Put is a compare-and-set write of one record: it succeeds only if the
// stored revision is still Rev (0: the customer must not exist yet).
type Put struct {
	CustomerID string
	Record     *Record
	Rev        uint64
	// Data is Record as the store's [Encoder] encoded it; nil when the
	// store is not an Encoder or did not encode it.
	Data []byte
}

// Rejected is a customer whose new record the store refused (it wraps
// [ErrTooLarge]): nothing of the batch was written for them, their state
// stays as stored, and Msgs are their events of the batch, which the
// caller must set aside (a dead-letter queue) so that they are neither
// lost nor retried forever. A customer rejected by a sweep has no Msgs.
type Rejected struct {
	CustomerID string
	Msgs       []Msg
	Err        error
}

// Expiry is an entry of the inactivity index: when the customer's window
// expires, zero to remove the entry.
type Expiry struct {
	CustomerID string
	Partition  int
	At         time.Time
}
