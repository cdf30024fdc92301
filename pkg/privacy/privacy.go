package privacy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/erasure"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/suppression"
	"github.com/klantreis/journey/pkg/warehouse"
)

// Options configure a [Service].
type Options struct {
	Names Names
	// Replicas of the buckets and stream the service creates (default 1).
	Replicas int
	// Source is the CloudEvents source of receipts (default "journey/privacy").
	Source string
	// AfterStep is erasure.Eraser.AfterStep (tests crash with it).
	AfterStep func(*erasure.Record)
}

// Service erases customers from every store and answers for erasures.
type Service struct {
	js       jetstream.JetStream
	db       *warehouse.DB
	o        Options
	journal  *Journal
	supp     suppressor
	receipts receipts
}

// Open creates or opens the suppression and journal buckets and the
// receipt stream, and builds the erasure over [Stores].
func Open(ctx context.Context, js jetstream.JetStream, db *warehouse.DB, o Options) (*Service, error) {
	if db == nil || js == nil {
		return nil, fmt.Errorf("%w: privacy needs NATS and ClickHouse", erasure.ErrInvalid)
	}
	if o.Source == "" {
		o.Source = "journey/privacy"
	}
	skv, err := suppression.Open(ctx, js, o.Replicas)
	if err != nil {
		return nil, err
	}
	j, err := OpenJournal(ctx, js, o.Replicas)
	if err != nil {
		return nil, err
	}
	if err := ensureReceiptStream(ctx, js, o.Replicas); err != nil {
		return nil, err
	}
	return &Service{js: js, db: db, o: o, journal: j, supp: suppressor{kv: skv}, receipts: receipts{js: js, source: o.Source}}, nil
}

// eraser builds the state machine over the stores as they are now (the
// tables are listed live, so each run covers the tables that exist).
func (s *Service) eraser(ctx context.Context) (*erasure.Eraser, error) {
	stores, err := Stores(ctx, s.js, s.db, s.o.Names)
	if err != nil {
		return nil, err
	}
	return &erasure.Eraser{Journal: s.journal, Suppressor: s.supp, Stores: stores, Receipts: s.receipts, AfterStep: s.o.AfterStep}, nil
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// NewID returns a fresh erasure id.
func NewID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "er-" + hex.EncodeToString(b[:])
}

// Erase erases customers under erasure id (empty: a new id), and returns
// its receipt once complete. The same id again resumes or returns the
// recorded erasure. Errors wrap erasure.ErrInvalid for a bad request.
func (s *Service) Erase(ctx context.Context, id string, customers []string) (Receipt, error) {
	if id == "" {
		id = NewID()
	}
	if !idPattern.MatchString(id) {
		return Receipt{}, fmt.Errorf("%w: erasure id %q must be 1-64 letters, digits, '-' or '_'", erasure.ErrInvalid, id)
	}
	e, err := s.eraser(ctx)
	if err != nil {
		return Receipt{}, s.suppressAnyway(ctx, id, customers, err)
	}
	rec, err := e.Start(ctx, id, customers)
	if rec == nil {
		return Receipt{}, err
	}
	return ReceiptOf(rec), err
}

// Begin records an erasure of customers under a new id and runs it in the
// background under ctx (which should outlive the request: the server's),
// returning its receipt as recorded (phase "recorded"). done, if not nil,
// receives the outcome. An erasure that the process does not finish is
// in the journal: [Service.ResumeAll] finishes it.
func (s *Service) Begin(ctx context.Context, customers []string, done func(Receipt, error)) (Receipt, error) {
	id := NewID()
	e, err := s.eraser(ctx)
	if err != nil {
		return Receipt{}, s.suppressAnyway(ctx, id, customers, err)
	}
	rec, err := e.Record(ctx, id, customers)
	if err != nil {
		return Receipt{}, err
	}
	first := ReceiptOf(rec)
	go func() {
		rec, err := e.Resume(ctx, rec)
		if done != nil {
			done(ReceiptOf(rec), err)
		}
	}()
	return first, nil
}

// suppressAnyway stores the customers' suppression entries when the
// erasure cannot start (a store the inventory does not cover): new events
// are refused from now on, while the inventory is fixed and the erasure
// run again. It returns cause, joined with a failure to suppress.
func (s *Service) suppressAnyway(ctx context.Context, id string, customers []string, cause error) error {
	var hashes []string
	for _, c := range customers {
		if c != "" {
			hashes = append(hashes, erasure.Hash(c))
		}
	}
	if len(hashes) == 0 {
		return cause
	}
	if err := s.supp.Suppress(ctx, hashes, time.Now().UTC(), id); err != nil {
		return errors.Join(cause, err)
	}
	return fmt.Errorf("%w (the customers are suppressed: their new events are refused; fix the inventory and run the erasure again)", cause)
}

// Get returns erasure id's receipt as recorded (of a running one too), or
// an error wrapping erasure.ErrNotFound.
func (s *Service) Get(ctx context.Context, id string) (Receipt, error) {
	if !idPattern.MatchString(id) {
		return Receipt{}, fmt.Errorf("%w: no erasure %q", erasure.ErrNotFound, id)
	}
	rec, err := s.journal.Load(ctx, id)
	if err != nil {
		return Receipt{}, err
	}
	return ReceiptOf(rec), nil
}

// ResumeAll finishes every erasure the journal holds unfinished (after a
// crash), returning the first error after trying them all.
func (s *Service) ResumeAll(ctx context.Context) ([]Receipt, error) {
	ids, err := s.journal.Unfinished(ctx)
	if err != nil {
		return nil, err
	}
	var out []Receipt
	var errs []error
	if len(ids) == 0 {
		return nil, nil
	}
	e, err := s.eraser(ctx)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		rec, err := s.journal.Load(ctx, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rec, err = e.Resume(ctx, rec)
		out = append(out, ReceiptOf(rec))
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

// Sweep purges from TOUCHPOINTS the messages of suppressed customers that
// arrived after their erasure completed (published straight to NATS: the
// writer and projector dropped them, but the stream keeps what a
// producer publishes). The suppression list holds only hashes, so it
// reads the stream's subjects and purges those whose customer's hash is
// listed. It returns the messages purged.
func (s *Service) Sweep(ctx context.Context) (uint64, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	set, err := suppression.Watch(wctx, s.supp.kv)
	if err != nil {
		return 0, err
	}
	st, err := s.js.Stream(ctx, stream.TouchpointStream)
	if err != nil {
		return 0, fmt.Errorf("privacy: sweep: %w", err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(stream.AllFactsFilter))
	if err != nil {
		return 0, fmt.Errorf("privacy: sweep: list subjects: %w", err)
	}
	var purged uint64
	for subj, n := range info.State.Subjects {
		_, _, key, ok := stream.ParseStoredSubject(subj)
		if !ok {
			continue
		}
		id, ok := stream.CustomerID(key)
		if !ok || !set.Has(id) {
			continue
		}
		if err := st.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
			return purged, fmt.Errorf("privacy: sweep: purge %s: %w", subj, err)
		}
		purged += n
	}
	return purged, nil
}
