package projector_test

import (
	"context"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/chserver"
	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/warehouse"
)

// TestSurvivesClickHouseOutage: ClickHouse dies (SIGKILL) while the
// projector runs. States keep being projected and acknowledged, rows wait
// in the outbox, and once ClickHouse is back customer_state catches up with
// the bucket.
func TestSurvivesClickHouseOutage(t *testing.T) {
	warehousetest.Addr(t) // skips (or fails in CI) when ClickHouse is not installed
	ctx := context.Background()
	srv, err := chserver.Start(ctx, chserver.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })

	br := freshStreams(t)
	js := br.js
	now := time.Now().UTC()
	events := journeys(6, 300, now)
	half := len(events) / 2
	publish(t, js, events[:half])
	cfg := br.config(warehouse.Config{Addr: srv.Addr(), Database: "journey_outage", User: "default",
		DialTimeout: 2 * time.Second, MaxOpenConns: 4})
	start(t, cfg)
	waitDrained(t, js, cfg.Projector.Durable, 2*time.Minute)
	waitWarehouse(t, js, cfg, 2*time.Minute)

	srv.Kill()
	publish(t, js, events[half:])
	waitDrained(t, js, cfg.Projector.Durable, 2*time.Minute) // projecting does not wait for ClickHouse
	s, err := js.Stream(ctx, cfg.Projector.OutboxStream)
	if err != nil {
		t.Fatal(err)
	}
	if s.CachedInfo().State.Msgs == 0 {
		t.Fatal("no rows waiting in the outbox while ClickHouse is down")
	}

	if srv, err = srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	waitWarehouse(t, js, cfg, 3*time.Minute)
	recs := kvStates(t, js, cfg.Projector.Bucket)
	for _, r := range projectedRows(t, openDB(t, cfg.ClickHouse), recs) {
		rec := recs[r.CustomerID]
		if rec == nil || r.Version != rec.Version() || r.Stage != string(rec.State.Stage()) {
			t.Fatalf("customer %q: customer_state %+v disagrees with the bucket", r.CustomerID, r)
		}
	}
}
