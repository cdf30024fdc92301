package writer_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/natsserver"
	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/services/writer"
)

// Shutdown stops fetching, stores and acks what the writer holds, then
// returns: a batch that would only flush much later is written at once.
func TestShutdownFlushesAndAcksTheOpenBatch(t *testing.T) {
	e := sharedEnv(t)
	const n = 3000
	e.publishN(n, time.Now().Add(-time.Hour))
	cfg := e.config(nil)
	cfg.Writer.BatchSize = 100_000
	cfg.Writer.MaxAckPending = 200_000
	cfg.Writer.BatchAge = time.Hour
	ready := make(chan net.Addr, 1)
	cfg.OpsReady = ready
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- writer.Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	base := "http://" + (<-ready).String()
	waitFor(t, time.Minute, "the writer to hold every message", func() bool {
		return metric(t, base, "journey_writer_consumer_ack_pending") == n
	})
	if c := e.count("SELECT count() FROM events"); c != 0 {
		t.Fatalf("%d rows before shutdown: the batch flushed early", c)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return after cancel")
	}
	e.assertExactlyOnce(n)
	waitFor(t, 10*time.Second, "the acks to land", func() bool { return e.drained("writer") })
}

// NATS is not there when the writer starts: it is up but not ready, and
// works once NATS appears.
func TestStartsWithoutNATSAndCatchesUp(t *testing.T) {
	port := freePort(t)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	ch := warehousetest.Config(t)
	pre := &env{t: t, ch: ch, nats: url}
	base := pre.inProc(pre.config(nil))
	waitFor(t, 10*time.Second, "healthz", func() bool { return status(base+"/healthz") == 200 })
	time.Sleep(time.Second)
	if s := status(base + "/readyz"); s != 503 {
		t.Fatalf("readyz without NATS: %d", s)
	}
	srv, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir(), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	e := newEnv(t, ch, url)
	e.openDB()
	waitFor(t, time.Minute, "ready once NATS is up", func() bool { return status(base+"/readyz") == 200 })
	e.publishN(500, time.Now().Add(-time.Hour))
	waitFor(t, time.Minute, "events stored", func() bool { return e.count("SELECT count() FROM events") >= 500 && e.drained("writer") })
	e.assertExactlyOnce(500)
}
