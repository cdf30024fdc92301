package journeyctl_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/natsserver/natstest"
	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/ruleset"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/services/projector"
)

// With deploy/nats's users, the projector user may follow the pointer but
// not use a version's buckets and consumers: it must not move to v2 (its
// workers would stall), it goes on under v1 and says why, and the switch
// (run as admin) moves the pointer back and exits 3 naming it.
func TestRederiveProjectorThatCannotMoveStays(t *testing.T) {
	sec := natstest.StartSecure(t, stream.DefaultAccessNames())
	admin := sec.Conn(stream.UserAdmin)
	e := &env{t: t, ch: warehousetest.Config(t), nats: sec.ClientURL(), user: admin.User, password: admin.Password}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e.open(ctx, admin)
	now := time.Now().UTC()
	publishFacts(t, e.js, rederiveFixture(t, now))

	cfg := projector.Config{NATS: sec.Conn(stream.UserProjector), Stream: stream.DefaultTopology(), ClickHouse: e.ch, Projector: e.config().ProjectorSettings}
	cfg.Projector.Addr, cfg.Projector.WarehouseWait = "127.0.0.1:0", 100*time.Millisecond
	pctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- projector.Run(pctx, cfg, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("projector: %v", err)
		}
	})
	waitFor(t, time.Minute, "the live projection of the fixture", func() bool {
		return e.count("SELECT count() FROM (SELECT customer_id FROM customer_state GROUP BY customer_id)") == uint64(len(fixtureIDs))
	})
	if code, _, _ := e.run("rederive", "start", "--rules", "loyal=2/365d"); code != 0 {
		t.Fatalf("rederive start exit %d", code)
	}
	code, _, errOut := e.run("rederive", "switch", "--wait", "25s")
	if code != 3 || !strings.Contains(errOut, "cannot run v2") || !strings.Contains(errOut, "the pointer is back at v1") {
		t.Fatalf("switch exit %d, stderr %q; want 3 naming the projector that cannot run v2, the pointer back at v1", code, errOut)
	}
	// The pointer is back, so the api reads the tables the projector keeps.
	ops, err := ruleset.Bind(ctx, e.js)
	if err != nil {
		t.Fatal(err)
	}
	if live, _, err := ops.Live(ctx); err != nil || live.Version != "v1" || live.Previous != "v2" {
		t.Fatalf("pointer %+v %v, want back at v1", live, err)
	}
	// v1 goes on: c-c's second order reaches the plain tables.
	ev, err := touchpoint.New("test-fixture", "perm-c2", "c-c", now.Add(-journey.Day).Truncate(time.Second),
		touchpoint.Order{OrderID: "c2", Status: "placed", Amount: touchpoint.Amount{Cents: 100}, Currency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	publishFacts(t, e.js, []touchpoint.Event{ev})
	waitFor(t, 30*time.Second, "v1 applying c-c's second order", func() bool {
		return e.count("SELECT count() FROM customer_state WHERE customer_id = 'c-c' AND counted_orders = 2") > 0
	})
}
