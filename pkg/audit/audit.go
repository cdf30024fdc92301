// Package audit is the operators' audit trail: every ops action (a
// replay, a rebuild, a redrive, a purge, a rules switch) is one
// io.klantreis.ops.<action>.v1 CloudEvent on the OPS stream and one row of
// the ClickHouse table ops_audit, naming the actor, the action, the
// selection and the counts. journeyctl and the API's ops actions record
// through it.
package audit

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

// Stream holds the ops CloudEvents, one subject per action (ops.<action>).
const (
	Stream    = "OPS"
	subjects  = "ops.>"
	typeStart = "io.klantreis.ops."
)

// StreamConfig is the audit stream's configuration: kept like the
// touchpoints (MaxAge 0 keeps it forever unless the topology bounds it).
func StreamConfig(t stream.Topology) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        Stream,
		Description: "journey ops audit: one CloudEvent per ops action (journeyctl, the API)",
		Subjects:    []string{subjects},
		Storage:     jetstream.FileStorage,
		Duplicates:  t.DuplicateWindow,
		Replicas:    t.Replicas,
	}
}

// Entry is one audited action: who did what to which selection, and the
// counts that came out.
type Entry struct {
	ID        string         `json:"id"`
	At        time.Time      `json:"at"`
	Actor     string         `json:"actor"`
	Action    string         `json:"action"` // dotted, e.g. deadletters.redrive
	Selection map[string]any `json:"selection"`
	Counts    map[string]int `json:"counts"`
	Outcome   string         `json:"outcome"` // ok, failed
	Error     string         `json:"error,omitempty"`
}

// Type is the CloudEvents type of an action: io.klantreis.ops.<action>.v1.
func Type(action string) string { return typeStart + action + ".v1" }

// NewID returns a random id (hex, 128 bits).
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Recorder records entries. JS or DB may be nil when the caller has
// neither; Record then fails, so that an action whose audit was not
// written does not report success.
type Recorder struct {
	JS jetstream.JetStream
	DB *warehouse.DB
	// Source is the CloudEvents source ("journeyctl", "journey-api").
	Source string
}

// Record publishes the ops CloudEvent (binary mode, on ops.<action>) and
// writes the ops_audit row. Both are attempted; the first error is
// returned. The entry's ID and Outcome are set when empty; At and Actor
// must be.
func (r Recorder) Record(ctx context.Context, a Entry) error {
	if a.ID == "" {
		a.ID = NewID()
	}
	if a.Outcome == "" {
		a.Outcome = "ok"
	}
	sel, _ := json.Marshal(a.Selection)
	counts, _ := json.Marshal(a.Counts)
	data, _ := json.Marshal(a)
	ev := touchpoint.Event{ID: a.ID, Source: r.Source, Type: Type(a.Action), Subject: a.Actor, Time: a.At,
		DataContentType: "application/json", Data: data}
	var first error
	if r.JS == nil {
		first = fmt.Errorf("audit: no NATS connection for the ops event")
	} else if _, err := r.JS.PublishMsg(ctx, stream.NewMsg("ops."+strings.ReplaceAll(a.Action, "_", "-"), &ev)); err != nil {
		first = fmt.Errorf("audit: ops event: %w", err)
	}
	var err error
	if r.DB == nil {
		err = fmt.Errorf("audit: no ClickHouse connection for the ops_audit row")
	} else {
		err = r.DB.InsertRow(ctx, `INSERT INTO ops_audit (at, event_id, actor, action, selection, counts, outcome, error)`,
			a.At, a.ID, a.Actor, a.Action, string(sel), string(counts), a.Outcome, a.Error)
		if err != nil {
			err = fmt.Errorf("audit: ops_audit row: %w", err)
		}
	}
	if first == nil {
		first = err
	}
	return first
}
