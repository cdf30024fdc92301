package writer_test

import (
	"fmt"
	"testing"
	"time"
)

// A writer process given a dead address first in both lists,
// JOURNEY_NATS_URL and JOURNEY_CLICKHOUSE_ADDR, connects to the living
// ones and stores every event once.
func TestWriterWithADeadNATSAndClickHouseAddress(t *testing.T) {
	e := sharedEnv(t)
	const n = 5000
	natsList := fmt.Sprintf("nats://127.0.0.1:%d, %s", freePort(t), e.nats)
	chList := fmt.Sprintf("127.0.0.1:%d, %s", freePort(t), e.ch.Addr)
	w := e.startProc("w", map[string]string{"JOURNEY_NATS_URL": natsList, "JOURNEY_CLICKHOUSE_ADDR": chList,
		"JOURNEY_WRITER_BATCH_SIZE": "1000", "JOURNEY_WRITER_BATCH_AGE": "100ms"})
	start := time.Now()
	waitFor(t, time.Minute, "the writer ready", func() bool { return status(w.ops+"/readyz") == 200 })
	ready := time.Since(start)
	e.publishN(n, time.Now().Add(-time.Hour))
	waitFor(t, time.Minute, "every event stored", func() bool {
		return e.count("SELECT count() FROM events") >= n && e.drained("writer")
	})
	e.assertExactlyOnce(n)
	t.Logf("JOURNEY_NATS_URL=%q JOURNEY_CLICKHOUSE_ADDR=%q: ready in %.2fs, %d events stored once", natsList, chList, ready.Seconds(), n)
}
