package projector_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/warehousetest"
)

// A projector process given a dead address first in JOURNEY_NATS_URL and
// JOURNEY_CLICKHOUSE_ADDR projects on the living ones: the states are the
// rules' and every warehouse row leaves the outbox.
func TestProjectorWithADeadNATSAndClickHouseAddress(t *testing.T) {
	br := freshStreams(t)
	cfg := br.config(warehousetest.Config(t))
	// A port nothing listens on any more: freeAddr closes its listener.
	natsList := fmt.Sprintf("nats://%s, %s", freeAddr(t), br.srv.ClientURL())
	chList := fmt.Sprintf("%s, %s", freeAddr(t), cfg.ClickHouse.Addr)
	startMember(t, childEnv(br, cfg, "JOURNEY_NATS_URL="+natsList, "JOURNEY_CLICKHOUSE_ADDR="+chList, "JOURNEY_PROJECTOR_BATCH_SIZE=500"), "deadaddr")
	now := time.Now().UTC()
	events := journeys(31, 500, now)
	publish(t, br.js, events)
	waitDrained(t, br.js, cfg.Projector.Durable, time.Minute)
	waitWarehouse(t, br.js, cfg, time.Minute)
	if got, want := stateHash(recordStates(kvStates(t, br.js, cfg.Projector.Bucket))), stateHash(reference(t, events, now)); got != want {
		t.Fatal("states differ from the rules applied to the events")
	}
	t.Logf("JOURNEY_NATS_URL=%q JOURNEY_CLICKHOUSE_ADDR=%q: %d events projected, outbox drained into ClickHouse", natsList, chList, len(events))
}
