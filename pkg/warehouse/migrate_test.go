package warehouse_test

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/warehouse"
)

func TestMain(m *testing.M) { os.Exit(warehousetest.Main(m)) }

func TestDetectFeatures(t *testing.T) {
	for _, tc := range []struct {
		v      string
		dt64   bool
		lc     bool
		errors bool
	}{
		{"18.16.1", false, false, false},
		{"19.17.4.11", false, false, false},
		{"24.8.4.13", true, true, false},
		{"25.3.1", true, true, false},
		{"garbage", false, false, true},
	} {
		f, err := warehouse.DetectFeatures(tc.v)
		if (err != nil) != tc.errors {
			t.Fatalf("%s: err %v", tc.v, err)
		}
		if f.DateTime64 != tc.dt64 || f.LowCardinality != tc.lc {
			t.Errorf("%s: got %+v", tc.v, f)
		}
	}
}

func TestMigrationsRenderForBothServerGenerations(t *testing.T) {
	for _, v := range []string{"18.16.1", "24.8.1"} {
		f, _ := warehouse.DetectFeatures(v)
		ms, err := warehouse.Migrations(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) < 5 {
			t.Fatalf("%s: %d migrations", v, len(ms))
		}
		for _, m := range ms {
			for _, s := range m.SQL {
				if f.DateTime64 != containsAny(s, "DateTime64") && containsAny(s, "DateTime") {
					if !f.DateTime64 && containsAny(s, "DateTime64") {
						t.Errorf("%s: %s uses DateTime64 on an old server", v, m.Name)
					}
				}
			}
		}
	}
}

func containsAny(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// Two services starting at once must both succeed and leave one schema.
func TestMigrateConcurrentlyIsSafeAndIdempotent(t *testing.T) {
	cfg := warehousetest.Config(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			db, err := warehouse.Open(ctx, cfg)
			if err != nil {
				errs[i] = err
				return
			}
			defer db.Close()
			_, errs[i] = db.Migrate(ctx)
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	db, err := warehouse.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	again, err := db.Migrate(ctx)
	if err != nil || len(again) != 0 {
		t.Fatalf("second migrate applied %d, err %v", len(again), err)
	}
	all, _ := warehouse.Migrations(db.Features)
	var tables uint64
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name IN ('events','events_dead','customer_state','stage_transitions','satisfaction_responses')", cfg.Database).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 5 {
		t.Fatalf("want 5 tables, got %d", tables)
	}
	var versions uint64
	if err := db.Conn.QueryRow(ctx, "SELECT uniqExact(version) FROM schema_migrations").Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if int(versions) != len(all) {
		t.Fatalf("recorded %d versions, want %d", versions, len(all))
	}
}
