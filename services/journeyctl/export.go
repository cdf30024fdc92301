package journeyctl

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/dsar"
	"github.com/klantreis/journey/pkg/projection"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/warehouse"
)

// ExportCmd answers a data subject access request: one JSON document
// (pkg/dsar) with everything journey keeps on a customer, from ClickHouse
// and the projector's state bucket, streamed to stdout or a file.
type ExportCmd struct {
	Customer string `arg:"" help:"The customer id (the events' subject)."`
	Output   string `short:"o" placeholder:"FILE" help:"Write the document to FILE (created 0600) instead of stdout."`
	Bucket   string `default:"journey_customers" help:"The projector's state bucket (its JOURNEY_PROJECTOR_BUCKET)."`
}

// Run writes the document, then audits the export with the customer's
// hash (the audit trail must not become one more copy of the id).
func (c *ExportCmd) Run(ctx context.Context, env *Env) error {
	if c.Customer == "" {
		return usagef("export needs a customer id")
	}
	db, err := env.DB(ctx)
	if err != nil {
		return err
	}
	js, err := env.JS(ctx)
	if err != nil {
		return err
	}
	out := env.Out
	if c.Output != "" {
		f, err := os.OpenFile(c.Output, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return fmt.Errorf("journeyctl: export: %w", err)
		}
		defer f.Close()
		out = f
	}
	// The projection of the live rules version (pkg/ruleset): after a
	// switch its tables and bucket are the ones journey serves.
	wh, bucket, err := c.live(ctx, env, db)
	if err != nil {
		return err
	}
	key := stream.CustomerKey(c.Customer)
	sections := append(dsar.WarehouseSections(wh, c.Customer, key),
		dsar.Section{Name: dsar.SectionProjectorState, Fill: projectorState(js, bucket, key)})
	counts, werr := dsar.Write(ctx, out, c.Customer, env.now(), sections...)
	if c.Output != "" && werr == nil {
		if f, ok := out.(*os.File); ok {
			werr = f.Sync()
		}
	}
	a := Audit{Action: "export", Selection: map[string]any{"customer_sha256": customerHash(c.Customer)}, Counts: counts}
	if werr != nil {
		a.Outcome, a.Error = "failed", werr.Error()
	}
	if err := env.audit(ctx, a); err != nil && werr == nil {
		werr = err
	}
	if werr == nil && c.Output != "" {
		fmt.Fprintf(env.Err, "exported %v to %s\n", map[string]int(counts), c.Output)
	}
	return werr
}

// live returns the warehouse reads and the state bucket of the live rules
// version: the base ones when no version was ever switched to.
func (c *ExportCmd) live(ctx context.Context, env *Env, db *warehouse.DB) (dsar.Warehouse, string, error) {
	ops, l, _, err := env.opsLive(ctx)
	if err != nil {
		return nil, "", err
	}
	r, err := env.version(ctx, ops, l.Version)
	if err != nil {
		return nil, "", err
	}
	if r.Version.IsBase() {
		return db, c.Bucket, nil
	}
	v, err := db.Variant(r.Version.TableSuffix())
	if err != nil {
		return nil, "", err
	}
	return versionReads{DB: db, v: v}, r.Version.Bucket(c.Bucket), nil
}

// versionReads reads a rules version's projection tables and everything
// else (touchpoints, dead letters, consent) from the tables no version
// changes.
type versionReads struct {
	*warehouse.DB
	v *warehouse.Variant
}

func (r versionReads) Customer(ctx context.Context, id string) (warehouse.CustomerState, error) {
	return r.v.Customer(ctx, id)
}

func (r versionReads) Transitions(ctx context.Context, id string) ([]warehouse.Transition, error) {
	return r.v.Transitions(ctx, id)
}

func (r versionReads) ExportResponses(ctx context.Context, id string, fn func(warehouse.ResponseRow) error) error {
	return r.v.ExportResponses(ctx, id, fn)
}

// projectorState emits the customer's record in the projector's bucket:
// its facts (marks, the latest survey comment, consent) and stage history
// as the projector keeps them. A bucket that does not exist (no projector
// ran) or a customer it does not hold is an empty section.
func projectorState(js jetstream.JetStream, bucket, key string) func(context.Context, func(any) error) error {
	return func(ctx context.Context, emit func(any) error) error {
		kv, err := js.KeyValue(ctx, bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("bucket %s: %w", bucket, err)
		}
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("bucket %s: %w", bucket, err)
		}
		raw, err := projection.RecordJSON(e.Value())
		if err != nil {
			return err
		}
		return emit(json.RawMessage(raw))
	}
}

func customerHash(id string) string {
	s := sha256.Sum256([]byte(id))
	return hex.EncodeToString(s[:])
}
