package ruleset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the key-value bucket of ops state shared by journeyctl, the
// projector and the api.
const Bucket = "JOURNEY_OPS"

// LiveKey holds the live version's [Live] pointer.
const LiveKey = "rules.live"

// versionPrefix + name holds a version's [Record].
const versionPrefix = "rules.version."

// ErrConflict: another writer changed the key since it was read.
var ErrConflict = errors.New("ruleset: concurrent change")

// ErrNotFound: no such version.
var ErrNotFound = errors.New("ruleset: no such version")

// Live is the pointer: which version the api, dashboard and projector use.
type Live struct {
	Version string `json:"version"`
	// Previous is the version live before, where rollback goes.
	Previous string    `json:"previous,omitempty"`
	At       time.Time `json:"at"`
	Actor    string    `json:"actor,omitempty"`
}

// Record is a non-base version with the state of its projection.
type Record struct {
	Version
	// State is "running" while a re-derive fills the projection, "ready"
	// once it reached the end of the stream.
	State   string    `json:"state"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// Events applied, and the stream sequence reached per partition, by
	// the last run that filled it.
	Events    int            `json:"events"`
	Positions map[int]uint64 `json:"positions,omitempty"`
}

// Record states.
const (
	StateRunning = "running"
	StateReady   = "ready"
)

// Store reads and writes the pointer and the version records.
type Store struct{ kv jetstream.KeyValue }

// Open creates or opens [Bucket]. It keeps 16 revisions per key, so the
// pointer's past moves can be read back with `nats kv history`.
func Open(ctx context.Context, js jetstream.JetStream, replicas int) (*Store, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "journey ops state: the live rules version and the re-derived versions",
		History:     16,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("ruleset: bucket %s: %w", Bucket, err)
	}
	return &Store{kv: kv}, nil
}

// Bind opens [Bucket] without creating it (for a reader that may not
// create buckets); it fails while nobody created it.
func Bind(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, Bucket)
	if err != nil {
		return nil, fmt.Errorf("ruleset: bucket %s: %w", Bucket, err)
	}
	return &Store{kv: kv}, nil
}

// Live returns the pointer and its revision; without a key the base is
// live at revision 0.
func (s *Store) Live(ctx context.Context) (Live, uint64, error) {
	e, err := s.kv.Get(ctx, LiveKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return Live{Version: Base}, 0, nil
	}
	if err != nil {
		return Live{}, 0, fmt.Errorf("ruleset: read %s: %w", LiveKey, err)
	}
	l, err := decodeLive(e.Value())
	return l, e.Revision(), err
}

func decodeLive(b []byte) (Live, error) {
	var l Live
	if err := json.Unmarshal(b, &l); err != nil || (l.Version != Base && !ValidName(l.Version)) {
		return Live{}, fmt.Errorf("ruleset: %s holds %q, not a pointer", LiveKey, b)
	}
	return l, nil
}

// SetLive moves the pointer if it is still at rev (0: never set).
func (s *Store) SetLive(ctx context.Context, l Live, rev uint64) error {
	_, err := s.MoveLive(ctx, l, rev)
	return err
}

// MoveLive is SetLive that returns the pointer's new revision.
func (s *Store) MoveLive(ctx context.Context, l Live, rev uint64) (uint64, error) {
	b, _ := json.Marshal(l) // strings and a time: cannot fail
	return s.casRev(ctx, LiveKey, b, rev)
}

func (s *Store) cas(ctx context.Context, key string, b []byte, rev uint64) error {
	_, err := s.casRev(ctx, key, b, rev)
	return err
}

func (s *Store) casRev(ctx context.Context, key string, b []byte, rev uint64) (uint64, error) {
	var err error
	var nrev uint64
	if rev == 0 {
		nrev, err = s.kv.Create(ctx, key, b)
	} else {
		nrev, err = s.kv.Update(ctx, key, b, rev)
	}
	var apiErr *jetstream.APIError
	if errors.Is(err, jetstream.ErrKeyExists) || errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
		return 0, fmt.Errorf("%w: %s changed meanwhile; read it again", ErrConflict, key)
	}
	if err != nil {
		return 0, fmt.Errorf("ruleset: write %s: %w", key, err)
	}
	return nrev, nil
}

// Get returns a version's record and revision, or ErrNotFound.
func (s *Store) Get(ctx context.Context, name string) (Record, uint64, error) {
	if !ValidName(name) || name == Base {
		return Record{}, 0, fmt.Errorf("%w: %q (versions are v2, v3, ...; v1 is the base)", ErrNotFound, name)
	}
	e, err := s.kv.Get(ctx, versionPrefix+name)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return Record{}, 0, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return Record{}, 0, fmt.Errorf("ruleset: read version %s: %w", name, err)
	}
	var r Record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return Record{}, 0, fmt.Errorf("ruleset: version %s: %w", name, err)
	}
	return r, e.Revision(), nil
}

// Put writes a version's record if it is still at rev (0: new).
func (s *Store) Put(ctx context.Context, r Record, rev uint64) (uint64, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return 0, fmt.Errorf("ruleset: version %s: %w", r.Name, err)
	}
	if err := s.cas(ctx, versionPrefix+r.Name, b, rev); err != nil {
		return 0, err
	}
	_, nrev, err := s.Get(ctx, r.Name)
	return nrev, err
}

// List returns every non-base version, oldest first.
func (s *Store) List(ctx context.Context) ([]Record, error) {
	lister, err := s.kv.ListKeysFiltered(ctx, versionPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("ruleset: list versions: %w", err)
	}
	var names []string
	for k := range lister.Keys() {
		names = append(names, strings.TrimPrefix(k, versionPrefix))
	}
	var out []Record
	for _, n := range names {
		r, _, err := s.Get(ctx, n)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	sortByNumber(out)
	return out, nil
}

func sortByNumber(rs []Record) {
	slices.SortFunc(rs, func(a, b Record) int {
		x, _ := number(a.Name)
		y, _ := number(b.Name)
		return x - y
	})
}

// Follow calls fn with the live version and the name of the one live
// before it ("" when none), at once and on every move of the pointer,
// until ctx ends. The base comes as Version{Name: Base} (its thresholds
// are the caller's configuration). A version whose record
// cannot be read is reported to log and skipped: fn keeps the last good
// one. A broken watch is restarted.
func (s *Store) Follow(ctx context.Context, log *slog.Logger, fn func(v Version, previous string)) {
	if log == nil {
		log = slog.Default()
	}
	last := ""
	for ctx.Err() == nil {
		w, err := s.kv.Watch(ctx, LiveKey)
		if err != nil {
			log.Warn("watch the live rules version failed; retrying", "err", err)
			sleep(ctx, time.Second)
			continue
		}
		initial := true
		for e := range w.Updates() {
			var l Live
			switch {
			case e == nil: // initial values done
				if initial && last == "" {
					l.Version = Base
				} else {
					initial = false
					continue
				}
			case e.Operation() != jetstream.KeyValuePut:
				l.Version = Base
			default:
				if l, err = decodeLive(e.Value()); err != nil {
					log.Error("live rules version unreadable; keeping the current one", "err", err)
					continue
				}
			}
			initial = false
			if l.Version == last {
				continue
			}
			v := Version{Name: Base}
			if l.Version != Base {
				r, _, err := s.Get(ctx, l.Version)
				if err != nil {
					log.Error("live rules version has no record; keeping the current one", "version", l.Version, "err", err)
					continue
				}
				v = r.Version
			}
			last = l.Version
			fn(v, l.Previous)
		}
		_ = w.Stop()
		sleep(ctx, 200*time.Millisecond)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// runningPrefix + instance holds the version a projector instance runs.
const runningPrefix = "rules.running."

// Running is what one projector instance reported.
type Running struct {
	Instance string    `json:"instance"`
	Version  string    `json:"version"`
	At       time.Time `json:"at"`
	// Error says why the instance does not run the live version, when it
	// could not move to it.
	Error string `json:"error,omitempty"`
}

// SetRunning records that instance now runs version.
func (s *Store) SetRunning(ctx context.Context, instance, version string) error {
	return s.SetRunningError(ctx, instance, version, "")
}

// SetRunningError records that instance runs version, with the error that
// keeps it from the live one ("" for none).
func (s *Store) SetRunningError(ctx context.Context, instance, version, errText string) error {
	b, _ := json.Marshal(Running{Instance: instance, Version: version, At: time.Now().UTC(), Error: errText})
	if _, err := s.kv.Put(ctx, runningPrefix+instanceKey(instance), b); err != nil {
		return fmt.Errorf("ruleset: report running %s: %w", version, err)
	}
	return nil
}

// ClearRunning removes instance's report (it stopped).
func (s *Store) ClearRunning(ctx context.Context, instance string) error {
	return s.kv.Delete(ctx, runningPrefix+instanceKey(instance))
}

// RunningAll returns every instance's report.
func (s *Store) RunningAll(ctx context.Context) ([]Running, error) {
	lister, err := s.kv.ListKeysFiltered(ctx, runningPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("ruleset: list running: %w", err)
	}
	var out []Running
	for k := range lister.Keys() {
		e, err := s.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("ruleset: read %s: %w", k, err)
		}
		var r Running
		if json.Unmarshal(e.Value(), &r) == nil {
			out = append(out, r)
		}
	}
	return out, nil
}

// instanceKey keeps a key token of letters, digits, - and _.
func instanceKey(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c == '-' || c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}
