package journeyctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/ruleset"
)

// OpsBucket is the KV bucket where long ops actions keep their progress
// (keys "replay.<id>", "rebuild.warehouse"), so that the same command after
// a kill -9 resumes where it stopped. It is pkg/ruleset's bucket, shared
// with the rules versions, and created with the same settings.
const OpsBucket = ruleset.Bucket

// rebuildKey is the warehouse rebuild's entry in [OpsBucket].
const rebuildKey = "rebuild.warehouse"

// Rebuild phases, in order. A rebuild is one of them at any time; each
// command checks the phase it starts from.
const (
	phaseFilling    = "filling"      // the shadow is being filled
	phaseFilled     = "filled"       // the shadow holds the source up to Mark
	phaseSwapping   = "swapping"     // the swap was begun; finishSwap completes it
	phaseSwapped    = "swapped"      // the shadow is live; the old tables are kept
	phaseRollingBck = "rolling_back" // a rollback was begun
	phaseRolledBack = "rolled_back"  // the old tables are live again
)

// Table name suffixes: the shadow while it is filled, the replaced tables
// after the swap.
const (
	shadowSuffix = "__rebuild"
	oldSuffix    = "__old"
)

// RebuildState is the rebuild's progress, as stored in [OpsBucket].
type RebuildState struct {
	Phase string `json:"phase"`
	// Source is "stream" (TOUCHPOINTS) or "table" (the events table).
	Source string `json:"source"`
	// Mark: every stream message with a sequence <= Mark has been judged
	// into the shadow (stream source); the final catch-up of the swap
	// copies the live table's rows after it.
	Mark uint64 `json:"mark"`
	// Months done of a table-source copy.
	Months   []uint32 `json:"months_done,omitempty"`
	Inserted uint64   `json:"inserted"`
	// Skipped counts duplicates and stale revisions, Invalid the messages
	// the writer would dead-letter (invalid, conflict, rejected).
	Skipped   uint64    `json:"skipped"`
	Invalid   uint64    `json:"invalid"`
	Started   time.Time `json:"started"`
	Updated   time.Time `json:"updated"`
	SwapMark  uint64    `json:"swap_mark,omitempty"`
	SwappedAt time.Time `json:"swapped_at,omitzero"`
	Method    string    `json:"swap_method,omitempty"`
	// CaughtUp counts the rows the final catch-up copied from the old
	// table into the new one (or back, on rollback).
	CaughtUp uint64 `json:"caught_up"`
}

// opsKV opens the ops bucket, creating it when missing. It never updates
// an existing bucket's configuration: other ops commands share it.
func (e *Env) opsKV(ctx context.Context) (jetstream.KeyValue, error) {
	js, err := e.JS(ctx)
	if err != nil {
		return nil, err
	}
	kv, err := js.KeyValue(ctx, OpsBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: OpsBucket, History: 16,
			Description: "journey ops: progress of journeyctl's long actions", Storage: jetstream.FileStorage, Replicas: e.Config.Stream.Replicas})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, OpsBucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("journeyctl: ops bucket %s: %w", OpsBucket, err)
	}
	return kv, nil
}

// loadRebuild returns the stored state (nil when no rebuild ever ran).
func loadRebuild(ctx context.Context, kv jetstream.KeyValue) (*RebuildState, error) {
	st, _, err := loadRecord[RebuildState](ctx, kv, rebuildKey,
		fmt.Sprintf("journeyctl: read %s/%s", OpsBucket, rebuildKey),
		fmt.Sprintf("journeyctl: %s/%s holds no rebuild state", OpsBucket, rebuildKey))
	return st, err
}

// loadRecord reads the JSON record under key in [OpsBucket] and its
// revision: (nil, 0, nil) when there is none. readFail and decodeFail
// begin the errors of a failed read and of a record that does not decode.
func loadRecord[T any](ctx context.Context, kv jetstream.KeyValue, key, readFail, decodeFail string) (*T, uint64, error) {
	ent, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", readFail, err)
	}
	var v T
	if err := json.Unmarshal(ent.Value(), &v); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", decodeFail, err)
	}
	return &v, ent.Revision(), nil
}

func saveRebuild(ctx context.Context, kv jetstream.KeyValue, st *RebuildState) error {
	st.Updated = time.Now().UTC()
	b, _ := json.Marshal(st)
	if _, err := kv.Put(ctx, rebuildKey, b); err != nil {
		return fmt.Errorf("journeyctl: save rebuild progress: %w", err)
	}
	return nil
}

// openRebuildState opens the rebuild's connections and reads its state
// (nil when no rebuild was started).
func openRebuildState(ctx context.Context, env *Env) (*rebuildRun, *RebuildState, error) {
	r, err := openRebuild(ctx, env)
	if err != nil {
		return nil, nil, err
	}
	st, err := loadRebuild(ctx, r.kv)
	if err != nil {
		return nil, nil, err
	}
	return r, st, nil
}

// phaseOf is st's phase, "none" when no rebuild was started.
func phaseOf(st *RebuildState) string {
	if st == nil {
		return "none"
	}
	return st.Phase
}
