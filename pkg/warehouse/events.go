package warehouse

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/klantreis/journey/pkg/touchpoint"
)

// ErrRejected marks a row that can never be stored as it is (a value the
// column cannot hold). It is permanent whatever [Classify] says of the
// wrapped driver error: callers dead-letter the row instead of retrying it.
var ErrRejected = errors.New("warehouse: row rejected")

// EventRow is one row of the events table (schemas/clickhouse/0001_events.sql).
type EventRow struct {
	StreamSeq   uint64
	ID          string
	Source      string
	Type        string
	Kind        string
	CustomerID  string
	Time        time.Time // UTC; DateTime64(3) keeps the millisecond, DateTime the second
	IngestedAt  time.Time
	ExtKeys     []string // sorted
	ExtValues   []string
	AccountID   string
	ContactID   string
	DMURole     string
	Channel     string
	Campaign    string
	Status      string
	AmountCents int64
	Currency    string
	Items       uint32
	Score       *uint8 // NULL when the event carries no score
	QuoteID     string
	OrderID     string
	ComplaintID string
	SurveyID    string
	Category    string
	Severity    string
	Data        string // the payload JSON as received
	// IDHash, ContentHash and Revision are the event's identity, content
	// fingerprint and correction number (touchpoint.IdentityHash,
	// .ContentHash, .Revision); event_ids indexes them.
	IDHash      uint64
	ContentHash uint64
	Revision    uint32
}

// NewEventRow maps a validated touchpoint and its payload to a row. seq is
// the stream sequence of the message that carried it: with the kind and
// customer it identifies the row for the writer's duplicate check.
func NewEventRow(seq uint64, e *touchpoint.Event, p *touchpoint.Payload, ingested time.Time) EventRow {
	r := EventRow{
		StreamSeq:   seq,
		ID:          e.ID,
		Source:      e.Source,
		Type:        e.Type,
		Kind:        string(e.Kind()),
		CustomerID:  e.Subject,
		Time:        e.Time.UTC(),
		IngestedAt:  ingested.UTC(),
		AccountID:   p.AccountID,
		ContactID:   p.ContactID,
		DMURole:     p.DMURole,
		Channel:     p.Channel,
		Campaign:    p.Campaign,
		Status:      p.Status,
		AmountCents: p.Amount.Cents,
		Currency:    p.Currency,
		QuoteID:     p.QuoteID,
		OrderID:     p.OrderID,
		ComplaintID: p.ComplaintID,
		SurveyID:    p.SurveyID,
		Category:    p.Category,
		Severity:    p.Severity,
		Data:        string(e.Data),
		IDHash:      touchpoint.IdentityHash(e.Source, e.ID),
		ContentHash: touchpoint.ContentHash(e),
	}
	r.Revision, _ = touchpoint.Revision(e) // Validate has refused a bad one
	if p.Items > 0 && p.Items <= 1<<32-1 {
		r.Items = uint32(p.Items)
	}
	if p.Has(touchpoint.FScore) && p.Score >= 0 && p.Score <= 255 {
		s := uint8(p.Score)
		r.Score = &s
	}
	if len(e.Extensions) > 0 {
		r.ExtKeys = make([]string, 0, len(e.Extensions))
		for k := range e.Extensions {
			r.ExtKeys = append(r.ExtKeys, k)
		}
		sort.Strings(r.ExtKeys)
		r.ExtValues = make([]string, len(r.ExtKeys))
		for i, k := range r.ExtKeys {
			r.ExtValues[i] = e.Extensions[k]
		}
	}
	return r
}

// Time ranges the time column can hold. DateTime is a UInt32 of seconds and
// the driver would wrap an earlier time silently, so such rows are refused
// before the insert rather than stored wrong.
var (
	minDateTime   = time.Unix(0, 0)
	maxDateTime   = time.Unix(1<<32-1, 0)
	minDateTime64 = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	maxDateTime64 = time.Date(2299, 12, 31, 23, 59, 59, 0, time.UTC)
)

// CheckEventRow returns an error wrapping [ErrRejected] when the server
// cannot store the row's values faithfully.
func (db *DB) CheckEventRow(r *EventRow) error { return db.checkTime(r.Time) }

// checkTime returns an error wrapping [ErrRejected] when t lies outside
// the range of the server's time columns.
func (db *DB) checkTime(t time.Time) error {
	lo, hi := minDateTime, maxDateTime
	if db.Features.DateTime64 {
		lo, hi = minDateTime64, maxDateTime64
	}
	if t.Before(lo) || t.After(hi) {
		return fmt.Errorf("%w: time %s is outside the column's range %s..%s", ErrRejected,
			t.Format(time.RFC3339), lo.UTC().Format("2006-01-02"), hi.UTC().Format("2006-01-02"))
	}
	return nil
}

const insertEvents = `INSERT INTO events (stream_seq, id, source, type, kind, customer_id, time, time_ms, ingested_at,
 ext_keys, ext_values, account_id, contact_id, dmu_role, channel, campaign, status, amount_cents, currency,
 items, score, quote_id, order_id, complaint_id, survey_id, category, severity, data, id_hash, content_hash, revision)`

// InsertEvents writes rows in one INSERT (one part, atomic on the server:
// all rows or none). The columns are appended column by column, which is
// several times cheaper than row by row. An error from the append phase
// (the driver refused a value) wraps [ErrRejected]; errors from Send are
// the server's, for [Classify].
func (db *DB) InsertEvents(ctx context.Context, rows []EventRow) error {
	if len(rows) == 0 {
		return nil
	}
	// The column slices are reused between inserts: at 20 000 rows they
	// are ~8 MB of pointers per batch for the garbage collector otherwise.
	c, _ := db.eventCols.Get().(*eventColumns)
	if c == nil {
		c = &eventColumns{}
	}
	defer func() {
		c.clear()
		db.eventCols.Put(c)
	}()
	return db.sendColumns(ctx, insertEvents, c.fill(rows))
}

// eventColumns holds the events table's columns, in insertEvents order.
type eventColumns struct {
	seq                                                       []uint64
	id, source, typ, kind, cust                               []string
	tm, ing                                                   []time.Time
	tms, amount                                               []int64
	extK, extV                                                [][]string
	acct, contact, dmu, channel, campaign, status, currency   []string
	items                                                     []uint32
	score                                                     []*uint8
	quote, order, complaint, survey, category, severity, data []string
	idHash, contentHash                                       []uint64
	revision                                                  []uint32
}

func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

var noStrings = []string{}

func (c *eventColumns) fill(rows []EventRow) []any {
	n := len(rows)
	c.seq, c.tms, c.amount, c.items, c.score = resize(c.seq, n), resize(c.tms, n), resize(c.amount, n), resize(c.items, n), resize(c.score, n)
	c.tm, c.ing, c.extK, c.extV = resize(c.tm, n), resize(c.ing, n), resize(c.extK, n), resize(c.extV, n)
	c.idHash, c.contentHash, c.revision = resize(c.idHash, n), resize(c.contentHash, n), resize(c.revision, n)
	strs := c.strings()
	for _, p := range strs {
		*p = resize(*p, n)
	}
	for i := range rows {
		r := &rows[i]
		c.seq[i], c.id[i], c.source[i], c.typ[i], c.kind[i], c.cust[i] = r.StreamSeq, r.ID, r.Source, r.Type, r.Kind, r.CustomerID
		c.tm[i], c.tms[i], c.ing[i] = r.Time, r.Time.UnixMilli(), r.IngestedAt
		c.extK[i], c.extV[i] = r.ExtKeys, r.ExtValues
		if c.extK[i] == nil {
			c.extK[i], c.extV[i] = noStrings, noStrings
		}
		c.acct[i], c.contact[i], c.dmu[i], c.channel[i], c.campaign[i], c.status[i] = r.AccountID, r.ContactID, r.DMURole, r.Channel, r.Campaign, r.Status
		c.amount[i], c.currency[i], c.items[i], c.score[i] = r.AmountCents, r.Currency, r.Items, r.Score
		c.quote[i], c.order[i], c.complaint[i], c.survey[i], c.category[i], c.severity[i], c.data[i] = r.QuoteID, r.OrderID, r.ComplaintID, r.SurveyID, r.Category, r.Severity, r.Data
		c.idHash[i], c.contentHash[i], c.revision[i] = r.IDHash, r.ContentHash, r.Revision
	}
	return []any{c.seq, c.id, c.source, c.typ, c.kind, c.cust, c.tm, c.tms, c.ing, c.extK, c.extV, c.acct, c.contact, c.dmu, c.channel, c.campaign,
		c.status, c.amount, c.currency, c.items, c.score, c.quote, c.order, c.complaint, c.survey, c.category, c.severity, c.data,
		c.idHash, c.contentHash, c.revision}
}

func (c *eventColumns) strings() []*[]string {
	return []*[]string{&c.id, &c.source, &c.typ, &c.kind, &c.cust, &c.acct, &c.contact, &c.dmu, &c.channel, &c.campaign,
		&c.status, &c.currency, &c.quote, &c.order, &c.complaint, &c.survey, &c.category, &c.severity, &c.data}
}

// clear drops the references to the rows' strings so that a pooled set
// does not keep a batch alive.
func (c *eventColumns) clear() {
	for _, p := range c.strings() {
		clear(*p)
	}
	clear(c.extK)
	clear(c.extV)
	clear(c.score)
}

func (db *DB) sendColumns(ctx context.Context, query string, cols []any) error {
	b, err := db.Conn.PrepareBatch(ctx, db.localInsert(query))
	if err != nil {
		return fmt.Errorf("warehouse: prepare insert: %w", err)
	}
	var rs reserver
	bcols := b.Columns()
	for i, c := range cols {
		if v, ok := c.([]string); ok && i < len(bcols) {
			rs.strings(bcols[i], v)
		}
		if err := b.Column(i).Append(c); err != nil {
			_ = b.Abort()
			return fmt.Errorf("%w: column %d: %v", ErrRejected, i, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("warehouse: insert: %w", err)
	}
	return nil
}

// WithQueryID tags the statements run with ctx with a query id, so that
// [DB.Running] can tell whether an insert the client gave up on (timeout,
// dropped connection) is still executing on the server.
func WithQueryID(ctx context.Context, id string) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithQueryID(id))
}

// NewQueryID returns prefix followed by 24 random hex digits: the id of
// one statement, for [WithQueryID].
func NewQueryID(prefix string) string {
	var b [12]byte
	_, _ = crand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// RunningWithPrefix counts the statements whose query id starts with
// prefix that still execute on the server (system.processes of the node
// this connection talks to). A process killed mid-INSERT leaves its
// statement running until the server notices or finishes it; rows it
// stores appear only then.
func (db *DB) RunningWithPrefix(ctx context.Context, prefix string) (uint64, error) {
	var n uint64
	q := "SELECT count() FROM system.processes WHERE substring(query_id, 1, ?) = ?"
	if err := db.Conn.QueryRow(ctx, q, len(prefix), prefix).Scan(&n); err != nil {
		return 0, fmt.Errorf("warehouse: system.processes: %w", err)
	}
	return n, nil
}

// Running reports whether the query with this id still executes on the
// server (system.processes). Once it does not, an INSERT's rows are either
// stored or never will be, so a check for them is conclusive.
func (db *DB) Running(ctx context.Context, queryID string) (bool, error) {
	var n uint64
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM system.processes WHERE query_id = ?", queryID).Scan(&n); err != nil {
		return false, fmt.Errorf("warehouse: system.processes: %w", err)
	}
	return n > 0, nil
}
