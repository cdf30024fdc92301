package writer_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/natsserver/natscluster"
	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/services/writer"
)

// loadPublisher publishes events one window at a time to every node's
// URL, re-sending (same Nats-Msg-Id) whatever was not acknowledged, and
// remembers the longest time without an acknowledgement.
type loadPublisher struct {
	t        *testing.T
	js       jetstream.JetStream
	mu       sync.Mutex
	acked    int
	lastAck  time.Time
	longest  time.Duration
	failures int
}

func (p *loadPublisher) run(from, n int, at time.Time) {
	const window = 200
	for start := from; start < from+n; start += window {
		pending := map[int]*nats.Msg{}
		for i := start; i < min(start+window, from+n); i++ {
			ev := gen(p.t, i, at)
			pending[i] = factMsg(p.t, &ev)
		}
		for len(pending) > 0 {
			futs := map[int]jetstream.PubAckFuture{}
			for i, m := range pending {
				// A fresh message per try: a sent nats.Msg is not reused.
				f, err := p.js.PublishMsgAsync(&nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
				if err == nil {
					futs[i] = f
				}
			}
			for i, f := range futs {
				select {
				case <-f.Ok():
					delete(pending, i)
					p.ack()
				case <-f.Err():
					p.fail()
				case <-time.After(5 * time.Second):
					p.fail()
				}
			}
			if len(pending) > 0 {
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
}

func (p *loadPublisher) ack() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if !p.lastAck.IsZero() && now.Sub(p.lastAck) > p.longest {
		p.longest = now.Sub(p.lastAck)
	}
	p.lastAck, p.acked = now, p.acked+1
}

func (p *loadPublisher) fail() {
	p.mu.Lock()
	p.failures++
	p.mu.Unlock()
}

// On a 3-node NATS cluster built from deploy/nats/cluster with every
// stream and bucket at R3, SIGKILL the leader of TOUCHPOINTS (and then of
// the writer's fence bucket) under load, restart it: every acknowledged
// touchpoint is stored once and the writer carries on.
func TestNATSClusterLeaderKilledUnderLoad(t *testing.T) {
	ch := warehousetest.Config(t)
	cl := natscluster.Start(t, 3)
	top := stream.DefaultTopology()
	top.Replicas = 3
	nc, err := nats.Connect(cl.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// Acks lost with a killed leader must fail their futures (after 5s), or
	// they stay pending for ever and stall the publisher at the async limit.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	// The meta leader is elected a moment after the nodes listen.
	waitFor(t, 30*time.Second, "the cluster to create the R3 streams", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return top.Ensure(ctx, js) == nil
	})
	e := &env{t: t, nc: nc, js: js, ch: ch, nats: cl.URLs()}
	e.openDB()
	cfg := e.config(nil)
	cfg.Stream = top
	e.inProc(cfg)
	waitFor(t, 30*time.Second, "the writer's R3 fence bucket", func() bool {
		_, err := js.KeyValue(context.Background(), writer.FenceBucket)
		return err == nil
	})

	pub := &loadPublisher{t: t, js: js}
	total := 0
	for _, target := range []string{"KV_" + writer.FenceBucket, stream.TouchpointStream} {
		const n = 6000
		done := make(chan struct{})
		from := total
		go func() { defer close(done); pub.run(from, n, time.Now().Add(-time.Hour)) }()
		total += n
		waitFor(t, time.Minute, "load to flow", func() bool {
			pub.mu.Lock()
			defer pub.mu.Unlock()
			return pub.acked > from+1000
		})
		leader, leaderName := cl.Leader(t, js, target)
		pub.mu.Lock()
		pub.longest, pub.lastAck = 0, time.Now()
		pub.mu.Unlock()
		killed := time.Now()
		leader.Kill()
		t.Logf("SIGKILLed %s, leader of %s, at %d acknowledged", leaderName, target, from+1000)
		time.Sleep(3 * time.Second)
		leader.Restart()
		t.Logf("restarted %s after %.1fs", leaderName, time.Since(killed).Seconds())
		select {
		case <-done:
		case <-time.After(3 * time.Minute):
			pub.mu.Lock()
			t.Fatalf("%s: the publisher did not finish within 3 minutes of the restart: %d acknowledged, %d failed attempts", target, pub.acked, pub.failures)
		}
		pub.mu.Lock()
		t.Logf("%s: longest gap between acknowledgements %.2fs (publishing resumed), %d failed publish attempts retried", target, pub.longest.Seconds(), pub.failures)
		pub.mu.Unlock()
	}
	waitFor(t, 2*time.Minute, "the writer to store every acknowledged touchpoint", func() bool {
		return e.count("SELECT count() FROM events") >= uint64(total) && e.drained("writer")
	})
	rows := e.count("SELECT count() FROM events")
	uniq := e.count("SELECT uniqExact(source, id) FROM events")
	t.Logf("acknowledged %d, rows %d, unique (source,id) %d: lost %d, duplicated %d", pub.acked, rows, uniq, total-int(uniq), int(rows)-int(uniq))
	e.assertExactlyOnce(total)
}
