package journeyctl

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/audit"
	"github.com/klantreis/journey/pkg/stream"
)

// The audit trail lives in pkg/audit; these are its names as journeyctl
// has always exported them.
const (
	OpsStream = audit.Stream
	opsSource = "journeyctl"
)

// OpsStreamConfig is audit.StreamConfig.
func OpsStreamConfig(t stream.Topology) jetstream.StreamConfig { return audit.StreamConfig(t) }

// Audit is one audited action (audit.Entry).
type Audit = audit.Entry

// OpsType is the CloudEvents type of an action: io.klantreis.ops.<action>.v1.
func OpsType(action string) string { return audit.Type(action) }

func newID() string { return audit.NewID() }

// audit publishes the ops CloudEvent and writes the ops_audit row
// (audit.Recorder). Both are attempted; the first error is returned so
// that an action whose audit failed does not exit 0.
func (e *Env) audit(ctx context.Context, a Audit) error {
	a.ID, a.At, a.Actor = newID(), e.now().UTC(), e.Actor()
	js, jerr := e.JS(ctx)
	if jerr != nil {
		js = nil
	}
	db, derr := e.DB(ctx)
	if derr != nil {
		db = nil
	}
	err := audit.Recorder{JS: js, DB: db, Source: opsSource}.Record(ctx, a)
	switch {
	case jerr != nil:
		return fmt.Errorf("journeyctl: audit event: %w", jerr)
	case derr != nil:
		return fmt.Errorf("journeyctl: audit row: %w (%v)", derr, err)
	}
	return err
}
