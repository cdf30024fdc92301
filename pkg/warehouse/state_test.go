package warehouse_test

import (
	"context"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/warehouse"
)

func TestWriteProjectionIsIdempotentAndVersioned(t *testing.T) {
	db := warehousetest.Open(t)
	ctx := context.Background()
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	score := uint8(3)
	state := func(version uint64, stage string) warehouse.CustomerStateRow {
		r := customerRow("c1", version, stage, at)
		r.CountedOrders, r.FirstOrderAt, r.NPSScore, r.NPSCategory = 1, &at, &score, "detractor"
		r.Responses, r.AtRisk = 1, true
		return r
	}
	tr := func(idx uint32, version uint64, valid bool, to string) warehouse.TransitionRow {
		return warehouse.TransitionRow{CustomerID: "c1", Idx: idx, Version: version, Valid: valid, From: "prospect", To: to,
			At: at, Reason: "first_order", CauseEventIDs: []string{"e1"}, RulesVersion: "r1"}
	}
	resp := warehouse.ResponseRow{CustomerID: "c1", Source: "s", EventID: "e9", SurveyID: "q", Time: at, Score: 3,
		Category: "detractor", Stage: "new_customer", StreamSeq: 9}
	for i := 0; i < 2; i++ { // the second round is a replay
		if err := db.WriteProjection(ctx, []warehouse.CustomerStateRow{state(10, "new_customer")},
			[]warehouse.TransitionRow{tr(0, 10, true, "prospect"), tr(1, 10, true, "new_customer"), tr(2, 10, true, "loyal_customer")},
			[]warehouse.ResponseRow{resp}); err != nil {
			t.Fatal(err)
		}
	}
	// A rewrite at a higher version: the history lost index 2.
	if err := db.WriteProjection(ctx, []warehouse.CustomerStateRow{state(11, "loyal_customer")},
		[]warehouse.TransitionRow{tr(1, 11, true, "loyal_customer"), {CustomerID: "c1", Idx: 2, Version: 11}}, nil); err != nil {
		t.Fatal(err)
	}
	got, err := db.ProjectedCustomers(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Version != 11 || got[0].Stage != "loyal_customer" || !got[0].AtRisk || got[0].NPSCategory != "detractor" {
		t.Fatalf("customer_state %+v", got)
	}
	var n uint64
	var to string
	if err := db.Conn.QueryRow(ctx, "SELECT count(), CAST(any(to_stage) AS String) FROM stage_transitions FINAL WHERE customer_id = 'c1' AND valid = 1 AND idx = 1").Scan(&n, &to); err != nil {
		t.Fatal(err)
	}
	if n != 1 || to != "loyal_customer" {
		t.Fatalf("transition 1: %d %q", n, to)
	}
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM stage_transitions FINAL WHERE customer_id = 'c1' AND valid = 1").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("valid transitions %d, want 2", n)
	}
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM satisfaction_responses FINAL").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("responses %d, want 1 after a replay", n)
	}
}
