package warehouse_test

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
)

func eventRow(t *testing.T, seq uint64, id, customer string, p touchpoint.Typed, at time.Time) warehouse.EventRow {
	t.Helper()
	e, err := touchpoint.New("shop", id, customer, at, p)
	if err != nil {
		t.Fatal(err)
	}
	e.Extensions = map[string]string{"traceparent": "00-abc", "region": "nl"}
	pl, err := touchpoint.Validate(&e, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return warehouse.NewEventRow(seq, &e, &pl, time.Now())
}

func TestInsertEventsRoundTripsEveryColumn(t *testing.T) {
	db := warehousetest.Open(t)
	ctx := context.Background()
	at := time.Date(2026, 3, 4, 5, 6, 7, 891e6, time.UTC)
	rows := []warehouse.EventRow{
		eventRow(t, 7, "q1", "cust-1", touchpoint.Quote{Common: touchpoint.Common{AccountID: "acc", ContactID: "c1", DMURole: "buyer", Channel: "email"}, QuoteID: "Q-1", Status: "sent", Amount: touchpoint.Amount{Cents: 123456}, Currency: "EUR"}, at),
		eventRow(t, 8, "s1", "cust-2", touchpoint.Survey{SurveyID: "S-1", Score: 0, Comment: "meh"}, at),
		eventRow(t, 9, "o1", "cust-2", touchpoint.Order{OrderID: "O-1", Status: "placed", Amount: touchpoint.Amount{Cents: 5}, Currency: "USD", Items: 3}, at),
		eventRow(t, 10, "v1", "cust-3", touchpoint.Visit{Common: touchpoint.Common{Channel: "web"}, Campaign: "spring"}, at),
		eventRow(t, 11, "c1", "cust-3", touchpoint.Complaint{ComplaintID: "C-1", Status: "opened", Category: "billing", Severity: "high"}, at),
	}
	if rows[1].Score == nil || *rows[1].Score != 0 || rows[0].Score != nil {
		t.Fatalf("score mapping: %v %v", rows[0].Score, rows[1].Score)
	}
	warehousetest.Must(t, db.InsertEvents(ctx, rows), "insert")

	got, ms := readEvents(t, db)
	if len(got) != len(rows) {
		t.Fatalf("read %d rows, want %d", len(got), len(rows))
	}
	for i, r := range got {
		want := rows[i]
		if ms[i] != at.UnixMilli() {
			t.Errorf("row %d: time_ms %d, want %d", i, ms[i], at.UnixMilli())
		}
		want.Time, want.IngestedAt = time.Time{}, time.Time{}
		if !reflect.DeepEqual(r, want) {
			t.Errorf("row %d:\n got %+v\nwant %+v", i, r, want)
		}
	}

	// The identity index holds every inserted event, by (source, id).
	hashes := []uint64{rows[0].IDHash, rows[2].IDHash, touchpoint.IdentityHash("shop", "nobody")}
	found, err := db.StoredVersions(ctx, hashes)
	warehousetest.Must(t, err, "stored versions")
	want := map[warehouse.Identity]touchpoint.Version{
		{Source: "shop", ID: "q1"}: {Revision: 0, Content: rows[0].ContentHash},
		{Source: "shop", ID: "o1"}: {Revision: 0, Content: rows[2].ContentHash},
	}
	if !reflect.DeepEqual(found, want) {
		t.Fatalf("stored versions: %v, want %v", found, want)
	}
}

// A correction adds a row at a higher revision; the index answers with
// the highest one.
func TestStoredVersionsAnswerTheHighestRevision(t *testing.T) {
	db := warehousetest.Open(t)
	ctx := context.Background()
	at := time.Now().Add(-time.Hour)
	orig := eventRow(t, 1, "s1", "cust-1", touchpoint.Survey{SurveyID: "S-1", Score: 3}, at)
	fixed := eventRow(t, 2, "s1", "cust-1", touchpoint.Survey{SurveyID: "S-1", Score: 8}, at)
	fixed.Revision = 2
	warehousetest.Must(t, db.InsertEvents(ctx, []warehouse.EventRow{orig}), "insert")
	warehousetest.Must(t, db.InsertEvents(ctx, []warehouse.EventRow{fixed}), "insert correction")
	found, err := db.StoredVersions(ctx, []uint64{orig.IDHash})
	warehousetest.Must(t, err, "stored versions")
	if got := found[warehouse.Identity{Source: "shop", ID: "s1"}]; got != (touchpoint.Version{Revision: 2, Content: fixed.ContentHash}) || orig.ContentHash == fixed.ContentHash {
		t.Fatalf("stored version %+v, want revision 2 with the correction's content", got)
	}
}

func TestCheckEventRowRefusesTimesTheColumnCannotHold(t *testing.T) {
	db := warehousetest.Open(t)
	// touchpoint.Validate refuses such times too; this is the last guard
	// before the driver would wrap them silently.
	r := eventRow(t, 1, "v", "c", touchpoint.Visit{Common: touchpoint.Common{Channel: "web"}}, time.Now())
	r.Time = time.Date(1850, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := db.CheckEventRow(&r); !errors.Is(err, warehouse.ErrRejected) {
		t.Fatalf("1850: %v", err)
	}
	r.Time = time.Now().UTC()
	if err := db.CheckEventRow(&r); err != nil {
		t.Fatalf("now: %v", err)
	}
}

func TestDeadRowsAndTheirCheck(t *testing.T) {
	db := warehousetest.Open(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	warehousetest.Must(t, db.InsertDead(ctx, []warehouse.DeadRow{
		{Consumer: "writer", StreamSeq: 3, Subject: "touchpoint.1.visit.x", Headers: `{"a":["b"]}`, Raw: "{", ErrorClass: "decode", ErrorText: "malformed", DeliveryCount: 1, DeadAt: now},
		{Consumer: "other", StreamSeq: 4, ErrorClass: "invalid", DeadAt: now},
	}), "insert dead")
	found, err := db.ExistingDeadSeqs(ctx, "writer", []uint64{3, 4, 5})
	warehousetest.Must(t, err, "existing dead")
	if !reflect.DeepEqual(found, map[uint64]bool{3: true}) {
		t.Fatalf("existing dead: %v", found)
	}
	var class, text, raw string
	var dc uint32
	warehousetest.Must(t, db.Conn.QueryRow(ctx, "SELECT error_class, error_text, raw, delivery_count FROM events_dead WHERE stream_seq = 3").Scan(&class, &text, &raw, &dc), "read dead")
	if class != "decode" || text != "malformed" || raw != "{" || dc != 1 {
		t.Fatalf("dead row: %q %q %q %d", class, text, raw, dc)
	}
}

// Large batches take other paths than the 5-row round trip: String columns
// get their capacity reserved up front (from 64 rows) and the column
// slices are reused from the previous insert. Two inserts, the second
// smaller, with strings from empty to 2 KB, must read back field by field.
func TestInsertEventsLargeBatchesReadBackExactly(t *testing.T) {
	db := warehousetest.Open(t)
	ctx := context.Background()
	at := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	var rows []warehouse.EventRow
	for i := range 700 {
		c := touchpoint.Common{AccountID: strings.Repeat("a", i%7), ContactID: "contact-" + strconv.Itoa(i), Channel: "web"}
		var p touchpoint.Typed = touchpoint.Visit{Common: c, URL: "https://x.example/" + strings.Repeat("p", (i*37)%2000), Campaign: strconv.Itoa(i)}
		if i%3 == 0 {
			p = touchpoint.Order{Common: c, OrderID: "O-" + strconv.Itoa(i), Status: "placed", Amount: touchpoint.Amount{Cents: int64(i)}, Currency: "EUR", Items: 1}
		}
		r := eventRow(t, uint64(i+1), "ev-"+strconv.Itoa(i), "cust-"+strconv.Itoa(i%13), p, at.Add(time.Duration(i)*time.Second))
		if i%5 == 0 {
			r.ExtKeys, r.ExtValues = nil, nil
		}
		rows = append(rows, r)
	}
	warehousetest.Must(t, db.InsertEvents(ctx, rows[:500]), "insert 1")
	warehousetest.Must(t, db.InsertEvents(ctx, rows[500:]), "insert 2")

	got, _ := readEvents(t, db)
	if len(got) != len(rows) {
		t.Fatalf("read %d rows, want %d", len(got), len(rows))
	}
	for i, r := range got {
		want := rows[i]
		want.Time, want.IngestedAt = time.Time{}, time.Time{}
		if want.ExtKeys == nil {
			want.ExtKeys, want.ExtValues = []string{}, []string{}
		}
		if !reflect.DeepEqual(r, want) {
			t.Fatalf("row %d:\n got %+v\nwant %+v", i, r, want)
		}
	}
}

// readEvents reads every row of events in stream order, with each row's
// time_ms beside it (the rows' Time and IngestedAt stay zero).
func readEvents(t *testing.T, db *warehouse.DB) ([]warehouse.EventRow, []int64) {
	t.Helper()
	got, err := db.Conn.Query(context.Background(), `SELECT stream_seq, id, source, type, kind, customer_id, time_ms, ext_keys, ext_values,
 account_id, contact_id, dmu_role, channel, campaign, status, amount_cents, currency, items, score,
 quote_id, order_id, complaint_id, survey_id, category, severity, data, id_hash, content_hash, revision FROM events ORDER BY stream_seq`)
	warehousetest.Must(t, err, "select")
	defer got.Close()
	var rows []warehouse.EventRow
	var ms []int64
	for got.Next() {
		var r warehouse.EventRow
		var m int64
		warehousetest.Must(t, got.Scan(&r.StreamSeq, &r.ID, &r.Source, &r.Type, &r.Kind, &r.CustomerID, &m, &r.ExtKeys, &r.ExtValues,
			&r.AccountID, &r.ContactID, &r.DMURole, &r.Channel, &r.Campaign, &r.Status, &r.AmountCents, &r.Currency, &r.Items, &r.Score,
			&r.QuoteID, &r.OrderID, &r.ComplaintID, &r.SurveyID, &r.Category, &r.Severity, &r.Data, &r.IDHash, &r.ContentHash, &r.Revision), "scan")
		rows, ms = append(rows, r), append(ms, m)
	}
	warehousetest.Must(t, got.Err(), "rows")
	return rows, ms
}

// Events stored before migration 12 carry no id_hash; its Go step indexes
// them with the same hashes the writer computes, so a replay of old
// events finds them.
func TestBackfillIndexesEventsStoredBeforeIdentity(t *testing.T) {
	db := warehousetest.Open(t)
	ctx := context.Background()
	r := eventRow(t, 5, "old-1", "cust-9", touchpoint.Visit{Common: touchpoint.Common{Channel: "web"}}, time.Now().Add(-48*time.Hour))
	// As an older writer wrote it: without the identity columns.
	b, err := db.Conn.PrepareBatch(ctx, "INSERT INTO events (stream_seq, id, source, type, kind, customer_id, time, time_ms, ingested_at, data)")
	warehousetest.Must(t, err, "prepare")
	warehousetest.Must(t, b.Append(r.StreamSeq, r.ID, r.Source, r.Type, r.Kind, r.CustomerID, r.Time, r.Time.UnixMilli(), r.IngestedAt, r.Data), "append")
	warehousetest.Must(t, b.Send(), "send")
	if found, err := db.StoredVersions(ctx, []uint64{r.IDHash}); err != nil || len(found) != 0 {
		t.Fatalf("before the backfill: %v %v", found, err)
	}
	warehousetest.Must(t, warehouse.BackfillIdentities(ctx, db), "backfill")
	found, err := db.StoredVersions(ctx, []uint64{r.IDHash})
	warehousetest.Must(t, err, "stored versions")
	if got, ok := found[warehouse.Identity{Source: "shop", ID: "old-1"}]; !ok || got.Content != r.ContentHash {
		t.Fatalf("after the backfill: %+v (found %v), want content %d", got, ok, r.ContentHash)
	}
}
