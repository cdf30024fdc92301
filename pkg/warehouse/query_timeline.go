package warehouse

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/klantreis/journey/pkg/touchpoint"
)

// Touchpoint is one stored event of a customer, as the timeline shows it.
type Touchpoint struct {
	StreamSeq   uint64
	ID          string
	Source      string
	Type        string
	Kind        string
	Time        time.Time
	TimeMs      int64
	AccountID   string
	ContactID   string
	Channel     string
	Campaign    string
	Status      string
	AmountCents int64
	Currency    string
	Score       *uint8
	QuoteID     string
	OrderID     string
	ComplaintID string
	SurveyID    string
	Category    string
	Severity    string
}

// TimelinePos is a position in a customer's timeline: events are ordered by
// (time_ms, stream_seq), which is unique per event.
type TimelinePos struct {
	TimeMs int64
	Seq    uint64
}

// Timeline returns up to limit touchpoints of a customer strictly after pos
// (nil: from the start), in time order.
func (db *DB) Timeline(ctx context.Context, id string, after *TimelinePos, limit int) ([]Touchpoint, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("%w: timeline: limit must be > 0", ErrConfig)
	}
	var p TimelinePos
	first := uint8(1)
	if after != nil {
		p, first = *after, 0
	}
	// events is ordered by (kind, customer_id, …): naming every fact kind
	// turns "one customer" into one key range per kind instead of a scan.
	kinds := touchpoint.FactKinds()
	args := make([]any, 0, len(kinds)+6)
	for _, k := range kinds {
		args = append(args, string(k))
	}
	// time >= the cursor's second lets later pages skip the months before
	// it (the table is partitioned by month of time).
	since := time.Unix(0, 0).UTC()
	if after != nil {
		since = time.UnixMilli(p.TimeMs).UTC().Truncate(time.Second)
	}
	args = append(args, id, since, first, p.TimeMs, p.TimeMs, p.Seq, limit)
	rows, err := db.Conn.Query(ctx, touchpointSelect+`
WHERE kind IN (`+strings.TrimSuffix(strings.Repeat("?, ", len(kinds)), ", ")+`) AND customer_id = ? AND time >= ? AND (? = 1 OR time_ms > ? OR (time_ms = ? AND stream_seq > ?))
ORDER BY time_ms, stream_seq
LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("warehouse: timeline: %w", err)
	}
	return scanTouchpoints(rows, "timeline")
}

// touchpointSelect selects the columns [scanTouchpoints] reads.
const touchpointSelect = `SELECT stream_seq, id, CAST(source AS String), CAST(type AS String), CAST(kind AS String),
    time_ms, account_id, contact_id, CAST(channel AS String), campaign, CAST(status AS String), amount_cents,
    CAST(currency AS String), score, quote_id, order_id, complaint_id, survey_id, category, CAST(severity AS String)
FROM events`

// scanTouchpoints reads the rows of a [touchpointSelect] query and closes
// them; what names the query in errors.
func scanTouchpoints(rows driver.Rows, what string) ([]Touchpoint, error) {
	defer rows.Close()
	var out []Touchpoint
	for rows.Next() {
		var t Touchpoint
		if err := rows.Scan(&t.StreamSeq, &t.ID, &t.Source, &t.Type, &t.Kind, &t.TimeMs, &t.AccountID,
			&t.ContactID, &t.Channel, &t.Campaign, &t.Status, &t.AmountCents, &t.Currency, &t.Score, &t.QuoteID,
			&t.OrderID, &t.ComplaintID, &t.SurveyID, &t.Category, &t.Severity); err != nil {
			return nil, fmt.Errorf("warehouse: %s: %w", what, err)
		}
		// time_ms, not time: time has only seconds on 18.16.
		t.Time = time.UnixMilli(t.TimeMs).UTC()
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("warehouse: %s: %w", what, err)
	}
	return out, nil
}
