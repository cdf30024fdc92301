package warehouse_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
)

// BenchmarkInsertEvents measures one 20 000-row INSERT of typical events
// (the writer's default batch): client-side column building and encoding
// plus the server's work. Allocations per op are the client's.
func BenchmarkInsertEvents(b *testing.B) {
	db := warehousetest.Open(b)
	ctx := context.Background()
	const n = 20_000
	at := time.Now().Add(-time.Hour)
	rows := make([]warehouse.EventRow, n)
	for i := range rows {
		common := touchpoint.Common{AccountID: "acc-" + strconv.Itoa(i%997), ContactID: "contact-" + strconv.Itoa(i%5003), Channel: "web"}
		var p touchpoint.Typed = touchpoint.Visit{Common: common, URL: "https://shop.example.com/p/" + strconv.Itoa(i%1000), Campaign: "spring"}
		if i%2 == 1 {
			p = touchpoint.Order{Common: common, OrderID: "O-" + strconv.Itoa(i), Status: "placed", Amount: touchpoint.Amount{Cents: int64(i)}, Currency: "EUR", Items: 2}
		}
		e, err := touchpoint.New("bench", "ev-"+strconv.Itoa(i), "cust-"+strconv.Itoa(i%20011), at.Add(time.Duration(i)*time.Millisecond), p)
		if err != nil {
			b.Fatal(err)
		}
		pl, err := touchpoint.Validate(&e, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		rows[i] = warehouse.NewEventRow(uint64(i+1), &e, &pl, time.Now())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := db.InsertEvents(ctx, rows); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkStoredVersions measures the writer's identity check: one batch
// of 20 000 identities, half of them stored, against an index of 1 M
// events.
func BenchmarkStoredVersions(b *testing.B) {
	db := warehousetest.Open(b)
	ctx := context.Background()
	const stored, batch = 1_000_000, 20_000
	for start := 0; start < stored; start += 100_000 {
		ins, err := db.Conn.PrepareBatch(ctx, "INSERT INTO event_ids (id_hash, source, id, revision, content_hash, customer_id, stream_seq)")
		if err != nil {
			b.Fatal(err)
		}
		for i := start; i < start+100_000; i++ {
			id := "ev-" + strconv.Itoa(i)
			if err := ins.Append(touchpoint.IdentityHash("bench", id), "bench", id, uint32(0), uint64(i), "cust-"+strconv.Itoa(i%20011), uint64(i+1)); err != nil {
				b.Fatal(err)
			}
		}
		if err := ins.Send(); err != nil {
			b.Fatal(err)
		}
	}
	hashes := make([]uint64, batch)
	for i := range hashes {
		hashes[i] = touchpoint.IdentityHash("bench", "ev-"+strconv.Itoa(i*(2*stored/batch)/2+i%2*stored))
	}
	b.ResetTimer()
	for b.Loop() {
		found, err := db.StoredVersions(ctx, hashes)
		if err != nil {
			b.Fatal(err)
		}
		if len(found) != batch/2 {
			b.Fatalf("found %d of %d", len(found), batch/2)
		}
	}
	b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "ids/s")
}
