// Package erasure is the right to be forgotten as a recorded state
// machine: for a batch of customers it first records a suppression entry
// (a hash of each id and the time), then removes the customers' data from
// every store in a fixed order, verifies that none is left, and finishes
// with a receipt that gives each store's count and the start and
// completion times.
//
// The machine is idempotent and resumable: every step is recorded in a
// [Journal] before and after it runs, so a run that dies (even by SIGKILL)
// is resumed by running it again with the same id, and a step that had
// already removed its data counts what it counted before it started, so
// the receipt stays complete. The stores are behind the small [Store]
// interface; the NATS and ClickHouse ones live at the edges
// (pkg/privacy).
package erasure

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/klantreis/journey/pkg/suppression"
)

// Errors.
var (
	// ErrNotFound: no erasure with that id is recorded.
	ErrNotFound = errors.New("erasure: not found")
	// ErrInvalid: the request is wrong (no customers, an empty id, ...).
	ErrInvalid = errors.New("erasure: invalid request")
	// ErrLeft: data was still found after the last attempt to remove it.
	ErrLeft = errors.New("erasure: data left after erasing")
)

// Hash is the pseudonym of a customer id that suppression and receipts
// keep: hex SHA-256 of the id. It lets every component recognise an
// erased customer without any store keeping the id itself.
func Hash(customerID string) string { return suppression.Hash(customerID) }

// Phases of an erasure, in order.
const (
	PhaseRecorded   = "recorded"   // the request is in the journal, nothing done yet
	PhaseSuppressed = "suppressed" // every customer's suppression entry is stored
	PhaseErasing    = "erasing"    // stores are being erased, Steps say how far
	PhaseVerified   = "verified"   // every store counted 0 afterwards
	PhaseComplete   = "complete"   // the receipt is published; the ids are dropped
)

// Record is one erasure as its journal keeps it. Customers holds the ids
// only while the erasure runs (they are needed to resume); PhaseComplete
// drops them and keeps the hashes.
type Record struct {
	ID        string    `json:"id"`
	Phase     string    `json:"phase"`
	Customers []string  `json:"customers,omitempty"`
	Hashes    []string  `json:"customer_hashes"`
	Started   time.Time `json:"started_at"`
	Completed time.Time `json:"completed_at,omitzero"`
	// Steps are the stores in erasure order, with what each counted.
	Steps []Step `json:"stores"`
	// Attempts counts the runs that worked on this erasure (1 without a
	// crash): a resumed erasure says so.
	Attempts int `json:"attempts"`
}

// Step is one store's part of an erasure.
type Step struct {
	Store string `json:"store"`
	// Counted is set once Count ran before erasing: what was removed.
	Counted bool   `json:"counted"`
	Count   uint64 `json:"count"`
	Erased  bool   `json:"erased"`
	// Gone is set when the store disappeared while the erasure ran (a
	// rebuild's shadow table dropped): its records went with it.
	Gone bool `json:"gone,omitempty"`
}

// Store is one place that holds customers' data.
type Store interface {
	// Name is the store's stable name in receipts ("stream TOUCHPOINTS",
	// "clickhouse events").
	Name() string
	// Count returns how many records of the customers the store holds.
	Count(ctx context.Context, customers []string) (uint64, error)
	// Erase removes them and returns once they are gone (a ClickHouse
	// mutation is waited for). It is idempotent.
	Erase(ctx context.Context, customers []string) error
}

// Inflow is implemented by a store that producers write into directly
// (the touchpoint stream: pkg/publish publishes to NATS, past the
// collector). What the verification finds there arrived after the
// suppression: it is erased and counted, but new arrivals do not fail the
// erasure, since no consumer stores them (they drop suppressed customers).
type Inflow interface {
	Inflow() bool
}

// Journal keeps erasure records (a replicated store: pkg/privacy
// uses a JetStream key-value bucket).
type Journal interface {
	Load(ctx context.Context, id string) (*Record, error) // ErrNotFound if absent
	Save(ctx context.Context, r *Record) error
}

// Suppressor stores suppression entries: after Suppress returns, every
// component drops new events of these customers.
type Suppressor interface {
	Suppress(ctx context.Context, hashes []string, at time.Time, erasureID string) error
}

// Receipts publishes the receipt of a complete erasure.
type Receipts interface {
	PublishReceipt(ctx context.Context, r *Record) error
}

// Eraser runs erasures over a fixed list of stores.
type Eraser struct {
	Journal    Journal
	Suppressor Suppressor
	Stores     []Store
	Receipts   Receipts
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Verify is how many times the stores are erased again when data is
	// found after erasing (an event in flight past the suppression when it
	// was stored); default 3. Then Run fails with ErrLeft, and running
	// it again tries again.
	Verify int
	// AfterStep, when set, is called after each recorded step (tests use
	// it to crash at a known point).
	AfterStep func(r *Record)
}

// Start records a new erasure of customers under id (idempotent: the same
// id again returns the recorded one) and runs it.
func (e *Eraser) Start(ctx context.Context, id string, customers []string) (*Record, error) {
	rec, err := e.Record(ctx, id, customers)
	if err != nil {
		return nil, err
	}
	return e.Resume(ctx, rec)
}

// Record records a new erasure of customers under id without running it
// (the same id again returns the recorded one): once it returns, the
// erasure is in the journal, and a crash before it ran is resumed from
// there. Errors wrap ErrInvalid for a bad request.
func (e *Eraser) Record(ctx context.Context, id string, customers []string) (*Record, error) {
	if id == "" {
		return nil, fmt.Errorf("%w: an erasure needs an id", ErrInvalid)
	}
	ids := slices.Clone(customers)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) == 0 {
		return nil, fmt.Errorf("%w: no customer to erase", ErrInvalid)
	}
	if ids[0] == "" {
		return nil, fmt.Errorf("%w: an empty customer id", ErrInvalid)
	}
	rec, err := e.Journal.Load(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
		rec = &Record{ID: id, Phase: PhaseRecorded, Customers: ids, Started: e.now()}
		for _, c := range ids {
			rec.Hashes = append(rec.Hashes, Hash(c))
		}
		for _, s := range e.Stores {
			rec.Steps = append(rec.Steps, Step{Store: s.Name()})
		}
		if err := e.save(ctx, rec); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	}
	return rec, nil
}

// Resume continues rec from its recorded phase to completion.
func (e *Eraser) Resume(ctx context.Context, rec *Record) (*Record, error) {
	if rec.Phase == PhaseComplete {
		return rec, nil
	}
	rec.Attempts++
	if err := e.save(ctx, rec); err != nil {
		return rec, err
	}
	if rec.Phase == PhaseRecorded {
		if err := e.Suppressor.Suppress(ctx, rec.Hashes, rec.Started, rec.ID); err != nil {
			return rec, fmt.Errorf("erasure %s: suppress: %w", rec.ID, err)
		}
		rec.Phase = PhaseSuppressed
		if err := e.save(ctx, rec); err != nil {
			return rec, err
		}
	}
	if rec.Phase == PhaseSuppressed || rec.Phase == PhaseErasing {
		rec.Phase = PhaseErasing
		if err := e.eraseAll(ctx, rec); err != nil {
			return rec, err
		}
		if err := e.verify(ctx, rec); err != nil {
			return rec, err
		}
		rec.Phase = PhaseVerified
		if err := e.save(ctx, rec); err != nil {
			return rec, err
		}
	}
	// PhaseVerified: the receipt. Published before the ids are dropped, so
	// a crash between the two publishes it again (consumers dedupe on the
	// erasure id, which is the receipt's CloudEvents id).
	if rec.Completed.IsZero() {
		rec.Completed = e.now()
	}
	if err := e.Receipts.PublishReceipt(ctx, rec); err != nil {
		return rec, fmt.Errorf("erasure %s: receipt: %w", rec.ID, err)
	}
	rec.Phase, rec.Customers = PhaseComplete, nil
	return rec, e.save(ctx, rec)
}

// step returns rec's step of the store named name, adding it when the
// journal does not have it yet (a store that appeared since the erasure
// started, such as a rebuild's shadow table, is erased too).
func step(rec *Record, name string) *Step {
	for i := range rec.Steps {
		if rec.Steps[i].Store == name {
			return &rec.Steps[i]
		}
	}
	rec.Steps = append(rec.Steps, Step{Store: name})
	return &rec.Steps[len(rec.Steps)-1]
}

// eraseAll counts, then erases, each store not yet erased, recording both.
// A step whose store is no longer in the list (a shadow table dropped
// meanwhile: its rows went with it) is closed as gone.
func (e *Eraser) eraseAll(ctx context.Context, rec *Record) error {
	present := map[string]bool{}
	for _, s := range e.Stores {
		present[s.Name()] = true
		st := step(rec, s.Name())
		if st.Erased {
			continue
		}
		if !st.Counted {
			n, err := s.Count(ctx, rec.Customers)
			if err != nil {
				return fmt.Errorf("erasure %s: count %s: %w", rec.ID, s.Name(), err)
			}
			st.Count, st.Counted = n, true
			if err := e.save(ctx, rec); err != nil {
				return err
			}
		}
		if err := s.Erase(ctx, rec.Customers); err != nil {
			return fmt.Errorf("erasure %s: erase %s: %w", rec.ID, s.Name(), err)
		}
		st = step(rec, s.Name()) // save may not move it, but stay safe
		st.Erased = true
		if err := e.save(ctx, rec); err != nil {
			return err
		}
	}
	for i := range rec.Steps {
		if st := &rec.Steps[i]; !present[st.Store] && !st.Erased {
			st.Erased, st.Gone = true, true
		}
	}
	return nil
}

// verify counts every store again; what it finds (a message or row that
// was in flight past the suppression when it was stored) is erased and
// added to the store's count.
func (e *Eraser) verify(ctx context.Context, rec *Record) error {
	tries := e.Verify
	if tries <= 0 {
		tries = 3
	}
	for try := 0; ; try++ {
		left := 0
		for _, s := range e.Stores {
			n, err := s.Count(ctx, rec.Customers)
			if err != nil {
				return fmt.Errorf("erasure %s: verify %s: %w", rec.ID, s.Name(), err)
			}
			if n == 0 {
				continue
			}
			if in, ok := s.(Inflow); ok && in.Inflow() {
				if err := s.Erase(ctx, rec.Customers); err != nil {
					return fmt.Errorf("erasure %s: erase %s again: %w", rec.ID, s.Name(), err)
				}
				step(rec, s.Name()).Count += n
				continue
			}
			left++
			if try == tries {
				return fmt.Errorf("%w: erasure %s: %s still holds %d records", ErrLeft, rec.ID, s.Name(), n)
			}
			if err := s.Erase(ctx, rec.Customers); err != nil {
				return fmt.Errorf("erasure %s: erase %s again: %w", rec.ID, s.Name(), err)
			}
			step(rec, s.Name()).Count += n
		}
		if left == 0 {
			return nil
		}
		if err := e.save(ctx, rec); err != nil {
			return err
		}
	}
}

func (e *Eraser) save(ctx context.Context, rec *Record) error {
	if err := e.Journal.Save(ctx, rec); err != nil {
		return fmt.Errorf("erasure %s: journal: %w", rec.ID, err)
	}
	if e.AfterStep != nil {
		e.AfterStep(rec)
	}
	return nil
}

func (e *Eraser) now() time.Time {
	if e.Now != nil {
		return e.Now().UTC()
	}
	return time.Now().UTC()
}
