package writer_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/natsserver/natsproc"
	"github.com/klantreis/journey/internal/warehousetest"
)

// Under load, nats-server (a process of its own) is killed with SIGKILL
// and restarted four times. The broker saves a consumer's delivery state
// in the background, so after each crash it delivers again, as first
// deliveries, what the writer had already stored. Every accepted event
// is a row, once.
func TestBrokerKilledUnderLoadStoresEveryAcceptedEventOnce(t *testing.T) {
	broker := natsproc.Start(t)
	e := newEnv(t, warehousetest.Config(t), broker.URL())
	e.openDB()
	cfg := e.config(nil)
	cfg.Writer.BatchAge = 50 * time.Millisecond
	ops := e.inProc(cfg)

	pub, err := nats.Connect(broker.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	js, err := jetstream.New(pub)
	if err != nil {
		t.Fatal(err)
	}

	// Four publishers at ~1 500 events/s in all. A publish that fails is
	// retried with the same message until the broker acknowledges it, as
	// pkg/publish does: every event ends up accepted.
	const workers, perWorker = 4, 6000
	var accepted, retried atomic.Int64
	at := time.Now().Add(-time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second * workers / 1500)
			defer tick.Stop()
			for i := range perWorker {
				<-tick.C
				ev := gen(t, w*perWorker+i, at)
				m := factMsg(t, &ev)
				for {
					pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
					_, err := js.PublishMsg(pctx, m)
					pcancel()
					if err == nil {
						break
					}
					if ctx.Err() != nil {
						return
					}
					retried.Add(1)
					time.Sleep(50 * time.Millisecond)
				}
				accepted.Add(1)
			}
		}()
	}
	const kills = 4
	for k := range kills {
		time.Sleep(2500 * time.Millisecond)
		before := e.count("SELECT count() FROM events")
		broker.Kill()
		time.Sleep(300 * time.Millisecond)
		broker.Restart()
		t.Logf("kill %d: broker SIGKILLed and restarted with %d rows stored", k+1, before)
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("publishing did not finish: %d of %d accepted", accepted.Load(), workers*perWorker)
	}
	n := int(accepted.Load())
	waitFor(t, 2*time.Minute, "the writer to store everything accepted", func() bool {
		return e.count("SELECT uniqExact(source, id) FROM events") >= uint64(n) && e.drained("writer")
	})
	info, err := mustStream(t, e, "TOUCHPOINTS").Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rows := e.count("SELECT count() FROM events")
	uniq := e.count("SELECT uniqExact(source, id) FROM events")
	t.Logf("%d kills: %d events accepted (%d publish retries), %d stream messages, %d rows, %d unique (source, id); writer: %v redelivered, %v duplicates skipped",
		kills, n, retried.Load(), info.State.Msgs, rows, uniq,
		metric(t, ops, "journey_writer_redelivered_total"), metric(t, ops, "journey_writer_duplicates_skipped_total"))
	if rows != uint64(n) || uniq != uint64(n) {
		t.Fatalf("%d accepted events, %d rows, %d unique (source, id): want all three equal", n, rows, uniq)
	}
}
