package warehouse

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/klantreis/journey/pkg/touchpoint"
)

// The readers of this file serve the right of access (docs/privacy.md): each
// streams every row one table holds on a customer to fn, one row at a time,
// so that a customer with millions of rows is never held in memory. An
// error from fn stops the read and is returned as it is.

// ExportedTouchpoint is one stored touchpoint of a customer in its current
// version: the highest revision stored for its (source, id).
type ExportedTouchpoint struct {
	Source     string            `json:"source"`
	ID         string            `json:"id"`
	Type       string            `json:"type"`
	Kind       string            `json:"kind"`
	Time       time.Time         `json:"time"`
	Revision   uint32            `json:"revision"`
	StreamSeq  uint64            `json:"stream_seq"`
	IngestedAt time.Time         `json:"ingested_at"`
	Extensions map[string]string `json:"extensions,omitempty"`
	// Data is the payload as it was received (after ingest masking).
	Data json.RawMessage `json:"data"`
}

// touchpointKinds are every kind a customer's touchpoint can have. events is
// ordered by (kind, customer_id, …): naming them all turns "one customer"
// into one key range per kind instead of a scan.
func touchpointKinds() []any {
	kinds := touchpoint.FactKinds()
	out := make([]any, len(kinds))
	for i, k := range kinds {
		out[i] = string(k)
	}
	return out
}

// ExportTouchpoints streams a customer's touchpoints in their current
// version, in time order. A superseded revision is not sent: it is no
// longer what journey holds to be true (it stays in the table until the
// next merge or erasure; docs/privacy.md, Rectification).
func (db *DB) ExportTouchpoints(ctx context.Context, customerID string, fn func(ExportedTouchpoint) error) error {
	return db.exportTouchpoints(ctx, customerID, "", fn)
}

func (db *DB) exportTouchpoints(ctx context.Context, customerID, where string, fn func(ExportedTouchpoint) error) error {
	// LIMIT 1 BY over (source, id) ordered by revision keeps the current
	// version on 18.16 and current servers alike; the outer ORDER BY puts
	// them in time order (a correction may have moved the time).
	q := `SELECT source, id, type, kind, time_ms, revision, stream_seq, ingested_at, ext_keys, ext_values, data
FROM (
    SELECT CAST(source AS String) AS source, id, CAST(type AS String) AS type, CAST(kind AS String) AS kind,
        time_ms, revision, stream_seq, ingested_at, ext_keys, ext_values, data
    FROM events
    WHERE kind IN ? AND customer_id = ?
    ORDER BY source, id, revision DESC, stream_seq DESC
    LIMIT 1 BY source, id
)
` + where + `
ORDER BY time_ms, source, id`
	rows, err := db.Conn.Query(ctx, q, clickhouse.GroupSet{Value: touchpointKinds()}, customerID)
	if err != nil {
		return fmt.Errorf("warehouse: export touchpoints: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		t, err := scanExported(rows)
		if err != nil {
			return fmt.Errorf("warehouse: export touchpoints: %w", err)
		}
		if err := fn(t); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("warehouse: export touchpoints: %w", err)
	}
	return nil
}

// rawJSON returns s as a JSON value, or as a JSON string when it is not
// valid JSON (a dead letter's body may be anything), so that the document
// around it stays valid.
func rawJSON(s string) json.RawMessage {
	if s == "" {
		return json.RawMessage("null")
	}
	if json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	b, _ := json.Marshal(s)
	return b
}

// ExportedDeadLetter is one row of events_dead that belongs to a customer.
type ExportedDeadLetter struct {
	Consumer      string          `json:"consumer"`
	StreamSeq     uint64          `json:"stream_seq"`
	Subject       string          `json:"subject"`
	Headers       json.RawMessage `json:"headers"`
	Raw           json.RawMessage `json:"raw"`
	ErrorClass    string          `json:"error_class"`
	ErrorText     string          `json:"error_text"`
	DeliveryCount uint32          `json:"delivery_count"`
	DeadAt        time.Time       `json:"dead_at"`
}

// ExportDeadLetters streams the dead letters of a customer. events_dead has
// no customer column (a dead letter may be too broken to name one): a row
// belongs to the customer when the last token of its subject is the
// customer's subject key, or when its stored headers carry the customer as
// ce-subject. key is stream.CustomerKey(customerID) (passed in: this package knows no
// NATS).
func (db *DB) ExportDeadLetters(ctx context.Context, customerID, key string, fn func(ExportedDeadLetter) error) error {
	hdr, _ := json.Marshal([]string{customerID})
	rows, err := db.Conn.Query(ctx, `SELECT CAST(consumer AS String), stream_seq, subject, headers, raw,
    CAST(error_class AS String), error_text, delivery_count, dead_at
FROM events_dead
WHERE arrayElement(splitByChar('.', subject), -1) = ? OR position(headers, ?) > 0
ORDER BY dead_at, consumer, stream_seq`, key, `"Ce-Subject":`+string(hdr))
	if err != nil {
		return fmt.Errorf("warehouse: export dead letters: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var d ExportedDeadLetter
		var headers, raw string
		if err := rows.Scan(&d.Consumer, &d.StreamSeq, &d.Subject, &headers, &raw, &d.ErrorClass, &d.ErrorText, &d.DeliveryCount, &d.DeadAt); err != nil {
			return fmt.Errorf("warehouse: export dead letters: %w", err)
		}
		d.Headers, d.Raw, d.DeadAt = rawJSON(headers), rawJSON(raw), d.DeadAt.UTC()
		if err := fn(d); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("warehouse: export dead letters: %w", err)
	}
	return nil
}

// ExportResponses streams a customer's survey answers (one per answer, the
// newest copy of a replayed one), in time order.
func (db *DB) ExportResponses(ctx context.Context, customerID string, fn func(ResponseRow) error) error {
	return db.exportResponses(ctx, "", customerID, fn)
}

// ExportResponses is [DB.ExportResponses] from the variant's table.
func (v *Variant) ExportResponses(ctx context.Context, customerID string, fn func(ResponseRow) error) error {
	return v.db.exportResponses(ctx, v.suffix, customerID, fn)
}

func (db *DB) exportResponses(ctx context.Context, suffix, customerID string, fn func(ResponseRow) error) error {
	rows, err := db.Conn.Query(ctx, `SELECT customer_id, contact_id, account_id, CAST(source AS String), event_id, survey_id,
    time, score, CAST(category AS String), comment, CAST(stage AS String), stream_seq
FROM satisfaction_responses`+suffix+`
WHERE customer_id = ?
ORDER BY source, event_id, stream_seq DESC
LIMIT 1 BY source, event_id`, customerID)
	if err != nil {
		return fmt.Errorf("warehouse: export responses: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r ResponseRow
		if err := rows.Scan(&r.CustomerID, &r.ContactID, &r.AccountID, &r.Source, &r.EventID, &r.SurveyID,
			&r.Time, &r.Score, &r.Category, &r.Comment, &r.Stage, &r.StreamSeq); err != nil {
			return fmt.Errorf("warehouse: export responses: %w", err)
		}
		r.Time = r.Time.UTC()
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("warehouse: export responses: %w", err)
	}
	return nil
}

// ExportSuperseded streams the versions of a customer's touchpoints that a
// correction superseded (every row of a (source, id) but the one with the
// highest revision), by (source, id) and revision, newest first. They are
// no longer what journey holds true, but it still holds them (until
// retention or erasure), so the right of access covers them.
func (db *DB) ExportSuperseded(ctx context.Context, customerID string, fn func(ExportedTouchpoint) error) error {
	rows, err := db.Conn.Query(ctx, `SELECT CAST(source AS String), id, CAST(type AS String), CAST(kind AS String),
    time_ms, revision, stream_seq, ingested_at, ext_keys, ext_values, data
FROM events
WHERE kind IN ? AND customer_id = ? AND id_hash IN (
    SELECT id_hash FROM events WHERE kind IN ? AND customer_id = ? AND revision > 0)
ORDER BY source, id, revision DESC, stream_seq DESC`, clickhouse.GroupSet{Value: touchpointKinds()}, customerID,
		clickhouse.GroupSet{Value: touchpointKinds()}, customerID)
	if err != nil {
		return fmt.Errorf("warehouse: export superseded: %w", err)
	}
	defer rows.Close()
	var lastSource, lastID string
	first := true
	for rows.Next() {
		t, err := scanExported(rows)
		if err != nil {
			return fmt.Errorf("warehouse: export superseded: %w", err)
		}
		current := first || t.Source != lastSource || t.ID != lastID
		first, lastSource, lastID = false, t.Source, t.ID
		if current {
			continue // the current version: in ExportTouchpoints
		}
		if err := fn(t); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("warehouse: export superseded: %w", err)
	}
	return nil
}

func scanExported(rows rowScanner) (ExportedTouchpoint, error) {
	var t ExportedTouchpoint
	var ms int64
	var keys, values []string
	var data string
	if err := rows.Scan(&t.Source, &t.ID, &t.Type, &t.Kind, &ms, &t.Revision, &t.StreamSeq, &t.IngestedAt, &keys, &values, &data); err != nil {
		return t, err
	}
	t.Time = time.UnixMilli(ms).UTC()
	t.IngestedAt = t.IngestedAt.UTC()
	if len(keys) > 0 {
		t.Extensions = make(map[string]string, len(keys))
		for i, k := range keys {
			if i < len(values) {
				t.Extensions[k] = values[i]
			}
		}
	}
	t.Data = rawJSON(data)
	return t, nil
}

// ConsentExtension is the CloudEvents extension that carries a customer's
// consent answers on a touchpoint (pkg/journey parses it).
const ConsentExtension = "consent"

// ExportConsent streams the touchpoints that carry consent answers (the
// consent extension), in time order: the customer's consent history.
func (db *DB) ExportConsent(ctx context.Context, customerID string, fn func(ExportedTouchpoint) error) error {
	// On the current version only: a correction that drops the
	// extension takes the answer back.
	return db.exportTouchpoints(ctx, customerID, "WHERE has(ext_keys, '"+ConsentExtension+"')", fn)
}
