package journeyctl

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
)

// OpsStream holds the ops CloudEvents, one subject per action (ops.<action>).
const (
	OpsStream    = "OPS"
	opsSubjects  = "ops.>"
	opsSource    = "journeyctl"
	opsTypeStart = "io.klantreis.ops."
)

// OpsStreamConfig is the audit stream's configuration: kept like the
// touchpoints (MaxAge 0 keeps it forever unless the topology bounds it).
func OpsStreamConfig(t stream.Topology) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        OpsStream,
		Description: "journey ops audit: one CloudEvent per journeyctl action",
		Subjects:    []string{opsSubjects},
		Storage:     jetstream.FileStorage,
		Duplicates:  t.DuplicateWindow,
		Replicas:    t.Replicas,
	}
}

// Audit is one audited action: who did what to which selection, and the
// counts that came out.
type Audit struct {
	ID        string         `json:"id"`
	At        time.Time      `json:"at"`
	Actor     string         `json:"actor"`
	Action    string         `json:"action"` // dotted, e.g. deadletters.redrive
	Selection map[string]any `json:"selection"`
	Counts    map[string]int `json:"counts"`
	Outcome   string         `json:"outcome"` // ok, failed
	Error     string         `json:"error,omitempty"`
}

// OpsType is the CloudEvents type of an action: io.klantreis.ops.<action>.v1.
func OpsType(action string) string { return opsTypeStart + action + ".v1" }

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// audit publishes the ops CloudEvent (binary mode, on ops.<action>) and
// writes the ops_audit row. Both are attempted; the first error is returned
// so that an action whose audit failed does not exit 0.
func (e *Env) audit(ctx context.Context, a Audit) error {
	a.ID, a.At, a.Actor = newID(), e.now().UTC(), e.Actor()
	if a.Outcome == "" {
		a.Outcome = "ok"
	}
	sel, _ := json.Marshal(a.Selection)
	counts, _ := json.Marshal(a.Counts)
	data, _ := json.Marshal(a)
	ev := touchpoint.Event{ID: a.ID, Source: opsSource, Type: OpsType(a.Action), Subject: a.Actor, Time: a.At,
		DataContentType: "application/json", Data: data}
	var first error
	js, err := e.JS(ctx)
	if err == nil {
		m := stream.NewMsg("ops."+strings.ReplaceAll(a.Action, "_", "-"), &ev)
		_, err = js.PublishMsg(ctx, m)
	}
	if err != nil {
		first = fmt.Errorf("journeyctl: audit event: %w", err)
	}
	db, err := e.DB(ctx)
	if err == nil {
		err = db.InsertRow(ctx, `INSERT INTO ops_audit (at, event_id, actor, action, selection, counts, outcome, error)`,
			a.At, a.ID, a.Actor, a.Action, string(sel), string(counts), a.Outcome, a.Error)
	}
	if err != nil && first == nil {
		first = fmt.Errorf("journeyctl: audit row: %w", err)
	}
	return first
}

// insertRow inserts one row (the columns named in query) as a batch.
func insertRow(ctx context.Context, db *warehouse.DB, query string, values ...any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	b, err := db.Conn.PrepareBatch(ctx, query)
	if err != nil {
		return err
	}
	if err := b.Append(values...); err != nil {
		_ = b.Abort()
		return err
	}
	return b.Send()
}
