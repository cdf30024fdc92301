package warehouse_test

import (
	"context"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/warehouse"
)

// A survey score of 0 is a real answer (the lowest), not "no answer": it
// must round-trip through customer_state as 0, not NULL.
func TestCustomerStateKeepsScoreZero(t *testing.T) {
	db := warehousetest.Open(t)
	ctx := context.Background()
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	zero := uint8(0)
	for _, tc := range []struct {
		id    string
		score *uint8
	}{{"zero", &zero}, {"none", nil}} {
		row := customerRow(tc.id, 1, "prospect", at)
		row.NPSScore, row.NPSCategory = tc.score, "detractor"
		if err := db.WriteProjection(ctx, []warehouse.CustomerStateRow{row}, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.Customer(ctx, "zero")
	if err != nil {
		t.Fatal(err)
	}
	if got.NPSScore == nil || *got.NPSScore != 0 {
		t.Fatalf("score of customer zero = %v, want 0", got.NPSScore)
	}
	none, err := db.Customer(ctx, "none")
	if err != nil {
		t.Fatal(err)
	}
	if none.NPSScore != nil {
		t.Fatalf("score of customer without answer = %d, want NULL", *none.NPSScore)
	}
}
