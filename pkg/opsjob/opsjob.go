// Package opsjob is the queue of long ops actions asked for through the
// API: a replay, a rebuild, a re-derive, a rules switch or rollback, a
// retention run. The API submits a job (journeyctl's arguments and who asked);
// a worker (`journeyctl jobs work`) claims it, runs the same command that
// an operator would type, and records its state, progress and JSON result,
// which the API serves. The jobs live in one JetStream key-value bucket, so
// the API and the workers share nothing else, and a job outlives both.
//
// A worker that dies leaves its job running with a heartbeat that stops;
// after [Store.Stale] another worker (or the same one, restarted) claims it
// again and runs the same arguments, which resumes it: replay, rebuild and
// re-derive keep their own checkpoints and are idempotent per (source, id).
package opsjob

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/suppression"
)

// Bucket is the key-value bucket of the jobs.
const Bucket = "journey_ops_jobs"

// State is where a job stands.
type State string

const (
	Queued  State = "queued"
	Running State = "running"
	Done    State = "done"
	Failed  State = "failed"
)

// Job is one ops action asked for, and what became of it.
type Job struct {
	ID string `json:"id"`
	// Args are journeyctl's arguments, the command first
	// (["rederive", "switch", "--version", "v2"]).
	Args  []string `json:"args"`
	Actor string   `json:"actor"`
	State State    `json:"state"`
	// Attempts counts the claims: above 1, a worker died running it and
	// the job was resumed.
	Attempts  int        `json:"attempts"`
	Worker    string     `json:"worker,omitempty"`
	Created   time.Time  `json:"created"`
	Started   *time.Time `json:"started,omitempty"`
	Finished  *time.Time `json:"finished,omitempty"`
	Heartbeat *time.Time `json:"heartbeat,omitempty"`
	// Progress is the command's last progress line while it runs.
	Progress string `json:"progress,omitempty"`
	// Exit is journeyctl's exit code (docs/operations.md) once finished.
	Exit int `json:"exit"`
	// Result is the command's --json output; Error its error, if any.
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// ErrInvalid wraps every refusal of a job's arguments.
var ErrInvalid = errors.New("opsjob: invalid job")

// ErrNotFound is a job id that does not exist.
var ErrNotFound = errors.New("opsjob: no such job")

// Commands are the journeyctl commands a job may run. Erasure has its own
// endpoint (DELETE /v1/customers/{id}) with a receipt, export its own
// (GET /v1/customers/{id}/export), and dead letters theirs.
var Commands = []string{"replay", "rebuild", "rederive", "retention", "status"}

// globalFlags are journeyctl's flags that the worker sets or that would
// point the job at other servers than the worker's.
var globalFlags = []string{"--json", "--actor", "--nats-url", "--clickhouse-addr", "--clickhouse-database", "--help", "-h"}

// Validate checks args before a job is queued: a known command, no
// flag the worker owns, nothing empty.
func Validate(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: args is empty; give journeyctl's arguments, the command first, e.g. [\"rederive\", \"diff\"]", ErrInvalid)
	}
	if !slices.Contains(Commands, args[0]) {
		return fmt.Errorf("%w: command %q is not one a job runs; one of %s", ErrInvalid, args[0], strings.Join(Commands, ", "))
	}
	if len(args) > 64 {
		return fmt.Errorf("%w: %d arguments, at most 64", ErrInvalid, len(args))
	}
	for _, a := range args {
		if a == "" || len(a) > 4096 {
			return fmt.Errorf("%w: an argument is empty or longer than 4096 bytes", ErrInvalid)
		}
		name, _, _ := strings.Cut(a, "=")
		if slices.Contains(globalFlags, name) {
			return fmt.Errorf("%w: %s is set by the worker (the job runs with its configuration, as the API's actor, with --json)", ErrInvalid, name)
		}
	}
	return nil
}

// Store is the jobs bucket.
type Store struct {
	js jetstream.JetStream
	kv jetstream.KeyValue
	// Stale is how long a running job's heartbeat may be silent before
	// another worker claims it (default 30 s; workers beat every 2 s).
	Stale time.Duration
}

// Open creates or binds the jobs bucket with the given replicas.
func Open(ctx context.Context, js jetstream.JetStream, replicas int) (*Store, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: Bucket, Description: "journey: ops jobs asked for through the API (pkg/opsjob)",
		History: 1, Replicas: max(replicas, 1), Storage: jetstream.FileStorage,
		// A finished job is kept 30 days; a running one is rewritten by its
		// heartbeat, so it never ages out while it runs.
		TTL: 30 * 24 * time.Hour,
	})
	if err != nil {
		return nil, fmt.Errorf("opsjob: bucket %s: %w", Bucket, err)
	}
	return &Store{js: js, kv: kv, Stale: 30 * time.Second}, nil
}

// Bind binds the jobs bucket without creating it, for a user that may not
// create streams (it exists once a worker or the API with ops actions ran).
func Bind(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, Bucket)
	if err != nil {
		return nil, fmt.Errorf("opsjob: bucket %s: %w", Bucket, err)
	}
	return &Store{js: js, kv: kv, Stale: 30 * time.Second}, nil
}

// Submit queues a job after [Validate].
func (s *Store) Submit(ctx context.Context, args []string, actor string, now time.Time) (Job, error) {
	if err := Validate(args); err != nil {
		return Job{}, err
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Job{}, err
	}
	j := Job{ID: "job-" + now.UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:]),
		Args: args, Actor: actor, State: Queued, Created: now.UTC()}
	raw, err := json.Marshal(j)
	if err != nil {
		return Job{}, err
	}
	if _, err := s.kv.Create(ctx, j.ID, raw); err != nil {
		return Job{}, fmt.Errorf("opsjob: queue %s: %w", j.ID, err)
	}
	return j, nil
}

// Get reads one job and its revision.
func (s *Store) Get(ctx context.Context, id string) (Job, uint64, error) {
	e, err := s.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return Job{}, 0, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return Job{}, 0, fmt.Errorf("opsjob: read %s: %w", id, err)
	}
	var j Job
	if err := json.Unmarshal(e.Value(), &j); err != nil {
		return Job{}, 0, fmt.Errorf("opsjob: %s is not a job: %w", id, err)
	}
	return j, e.Revision(), nil
}

// List returns the jobs, newest first, at most limit (0: all).
func (s *Store) List(ctx context.Context, limit int) ([]Job, error) {
	lister, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("opsjob: list: %w", err)
	}
	var out []Job
	for k := range lister.Keys() {
		j, _, err := s.Get(ctx, k)
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Created.After(out[b].Created) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Claim takes the oldest job that is queued, or running with a heartbeat
// older than Stale, for worker, by compare-and-set: two workers never both
// hold a job. It returns false when there is none.
func (s *Store) Claim(ctx context.Context, worker string, now time.Time) (Job, uint64, bool, error) {
	jobs, err := s.List(ctx, 0)
	if err != nil {
		return Job{}, 0, false, err
	}
	slices.Reverse(jobs) // oldest first
	for _, listed := range jobs {
		if !claimable(listed, now, s.Stale) {
			continue
		}
		// Decide on the job as read with its revision: another worker may
		// have claimed it since the list.
		j, rev, err := s.Get(ctx, listed.ID)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return Job{}, 0, false, err
		}
		if !claimable(j, now, s.Stale) {
			continue
		}
		t := now.UTC()
		j.State, j.Worker, j.Attempts, j.Heartbeat = Running, worker, j.Attempts+1, &t
		if j.Started == nil {
			j.Started = &t
		}
		rev, err = s.Update(ctx, j, rev)
		if stream.IsWrongLastSeq(err) {
			continue // another worker was first, or the job moved on
		}
		if err != nil {
			return Job{}, 0, false, err
		}
		return j, rev, true, nil
	}
	return Job{}, 0, false, nil
}

// claimable: queued, or running with a heartbeat older than stale.
func claimable(j Job, now time.Time, stale time.Duration) bool {
	return j.State == Queued || j.State == Running && (j.Heartbeat == nil || now.Sub(*j.Heartbeat) > stale)
}

// Update writes j if it is still at rev, and returns its new revision. A
// job changed meanwhile gives an error [stream.IsWrongLastSeq] reports.
func (s *Store) Update(ctx context.Context, j Job, rev uint64) (uint64, error) {
	raw, err := json.Marshal(j)
	if err != nil {
		return 0, err
	}
	n, err := s.kv.Update(ctx, j.ID, raw, rev)
	if err != nil {
		return 0, fmt.Errorf("opsjob: update %s: %w", j.ID, err)
	}
	return n, nil
}

// ErrNoQueue is a jobs bucket that no worker has created yet.
var ErrNoQueue = errors.New("opsjob: no jobs queue yet: start a worker (journeyctl jobs work; make run starts one)")

// Binder binds the jobs bucket on first use and keeps it, so that an API
// started before any worker binds once one has created the bucket.
type Binder struct {
	js jetstream.JetStream
	mu sync.Mutex
	s  *Store
}

// NewBinder binds lazily on js.
func NewBinder(js jetstream.JetStream) *Binder { return &Binder{js: js} }

// Store returns the bound bucket, or ErrNoQueue while it does not exist.
func (b *Binder) Store(ctx context.Context) (*Store, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.s != nil {
		return b.s, nil
	}
	s, err := Bind(ctx, b.js)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, ErrNoQueue
	}
	if err != nil {
		return nil, err
	}
	b.s = s
	return s, nil
}

// Redact replaces every mention of the ids in the jobs (their arguments,
// progress and results) with "erased:" and the first 8 hex digits of the
// id's SHA-256, by compare-and-set, and returns how many jobs it changed;
// with dryRun it only counts them. A job that runs while it is redacted
// is stopped: its worker's next heartbeat loses the compare-and-set.
func (s *Store) Redact(ctx context.Context, ids []string, dryRun bool) (int, error) {
	return suppression.RedactKV(ctx, s.js, Bucket, ids, dryRun)
}
