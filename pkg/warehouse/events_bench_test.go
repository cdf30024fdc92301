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
