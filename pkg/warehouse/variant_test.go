package warehouse_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/warehouse"
)

// A variant's tables are written and read apart from the plain ones.
func TestVariantTablesAreApart(t *testing.T) {
	db := warehousetest.Open(t)
	ctx := context.Background()
	for _, bad := range []string{"v2", "_v2", "__v2;DROP", "__"} {
		if _, err := db.Variant(bad); !errors.Is(err, warehouse.ErrConfig) {
			t.Errorf("Variant(%q) err = %v, want ErrConfig", bad, err)
		}
	}
	v2, err := db.Variant("__v2")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // idempotent
		if err := v2.Create(ctx); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	row := func(id, stage string, version uint64) warehouse.CustomerStateRow {
		return customerRow(id, version, stage, at)
	}
	tr := warehouse.TransitionRow{CustomerID: "a", Idx: 0, Version: 1, Valid: true, From: "none", To: "prospect", At: at, Reason: "first_touchpoint", RulesVersion: "r"}
	if err := db.WriteProjection(ctx, []warehouse.CustomerStateRow{row("a", "new_customer", 1), row("b", "prospect", 1)}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := v2.WriteProjection(ctx, []warehouse.CustomerStateRow{row("a", "new_customer", 1), row("a", "loyal_customer", 2)}, []warehouse.TransitionRow{tr}, nil); err != nil {
		t.Fatal(err)
	}
	if c, err := db.Customer(ctx, "a"); err != nil || c.Stage != "new_customer" {
		t.Fatalf("plain a = %q, %v", c.Stage, err)
	}
	if c, err := v2.Customer(ctx, "a"); err != nil || c.Stage != "loyal_customer" {
		t.Fatalf("v2 a = %q, %v", c.Stage, err)
	}
	if _, err := v2.Customer(ctx, "b"); !errors.Is(err, warehouse.ErrNotFound) {
		t.Fatalf("v2 b: %v, want ErrNotFound", err)
	}
	if ts, err := v2.Transitions(ctx, "a"); err != nil || len(ts) != 1 || ts[0].To != "prospect" {
		t.Fatalf("v2 transitions %+v %v", ts, err)
	}
	if ts, err := db.Transitions(ctx, "a"); err != nil || len(ts) != 0 {
		t.Fatalf("plain transitions %+v %v", ts, err)
	}
	got := map[string]string{}
	if err := v2.Stages(ctx, func(id, stage string) error { got[id] = stage; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got["a"] != "loyal_customer" {
		t.Fatalf("v2 stages %v", got)
	}
	list, err := v2.Customers(ctx, warehouse.CustomerFilter{Limit: 10})
	if err != nil || len(list) != 1 || list[0].CustomerID != "a" {
		t.Fatalf("v2 list %+v %v", list, err)
	}
	from, to := at.Add(-time.Hour), at.Add(time.Hour)
	if fl, err := v2.StageFlows(ctx, from, to); err != nil || len(fl) != 1 || fl[0].To != "prospect" || fl[0].Transitions != 1 {
		t.Fatalf("v2 flows %+v %v", fl, err)
	}
	if fl, err := db.StageFlows(ctx, from, to); err != nil || len(fl) != 0 {
		t.Fatalf("plain flows %+v %v", fl, err)
	}
	if at, err := v2.StageDistributionAt(ctx, to); err != nil || len(at) != 1 || at[0].Stage != "prospect" {
		t.Fatalf("v2 distribution at %+v %v", at, err)
	}
	if _, err := v2.Funnel(ctx, from, to); err != nil {
		t.Fatalf("v2 funnel: %v", err)
	}
	if _, err := v2.NPS(ctx, from, to, warehouse.Day, warehouse.GroupStage, 10); err != nil {
		t.Fatalf("v2 nps: %v", err)
	}
	dist, err := v2.StageDistribution(ctx)
	if err != nil || len(dist) != 1 {
		t.Fatalf("v2 distribution %+v %v", dist, err)
	}
}
