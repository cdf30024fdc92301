package collector_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/natsserver/natscluster"
	"github.com/klantreis/journey/internal/natsserver/natsproc"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/services/collector"
)

// The collector (Run, as main starts it) is given every node of a 3-node
// NATS cluster plus a dead address in JOURNEY_NATS_URL, and R3 streams.
// Under load each node in turn is SIGKILLed and restarted, so the node the
// collector's connection is on dies at least once. Clients resend what got
// no 202; every event that got one is in the stream exactly once, counted
// by unique (source, id), and the figures are printed.
func TestCollectorOnAClusterSurvivesEachNodeKilled(t *testing.T) {
	cl := natscluster.Start(t, 3)
	dead := fmt.Sprintf("nats://127.0.0.1:%d", natsproc.FreePort(t))
	topo := stream.DefaultTopology()
	topo.Replicas = 3
	cfg := collector.Config{
		NATS:      stream.Conn{URL: dead + ", " + cl.URLs(), ReconnectWait: 100 * time.Millisecond, RequestTimeout: 2 * time.Second},
		Stream:    topo,
		Collector: testSettings(),
	}
	cfg.Collector.Addr = fmt.Sprintf("127.0.0.1:%d", natsproc.FreePort(t))
	base := "http://" + cfg.Collector.Addr
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- collector.Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	defer func() {
		cancel()
		<-done
	}()
	waitForLong(t, 60*time.Second, "the collector ready on the cluster", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	// Clients resend each event until it gets 202; a refusal or a
	// connection error while a node is down is expected.
	load := startResending(t, base+"/v1/events", "crm/failover", "fo", 100*time.Millisecond,
		func(int, string, error) error { return nil })
	for i, node := range cl.Nodes {
		before := load.count()
		waitForLong(t, 30*time.Second, "load to flow", func() bool { return load.count() > before+300 })
		node.Kill()
		killed, at := load.count(), time.Now()
		waitForLong(t, 60*time.Second, "events accepted again after the kill", func() bool { return load.count() > killed+100 })
		t.Logf("%s SIGKILLed with %d events accepted; 100 more accepted %.2fs later", cl.Names[i], killed, time.Since(at).Seconds())
		node.Restart()
	}
	time.Sleep(time.Second)
	accepted, refused := load.stop()

	nc, err := nats.Connect(cl.URLs())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var stored []stored
	waitForLong(t, 60*time.Second, "the stream readable", func() bool {
		var ok bool
		stored, ok = readStream(js)
		return ok
	})
	byID := countByID(stored)
	lost, dup := 0, 0
	for _, id := range accepted {
		switch n := byID["crm/failover "+id]; {
		case n == 0:
			lost++
		case n > 1:
			dup += n - 1
		}
	}
	t.Logf("%d events accepted (202), %d attempts refused and resent; %d messages in the R3 stream, %d unique (source, id): %d lost, %d duplicated",
		len(accepted), refused, len(stored), len(byID), lost, dup)
	if lost != 0 || dup != 0 || len(stored) != len(byID) {
		t.Fatalf("%d accepted events lost, %d duplicated; %d messages for %d ids", lost, dup, len(stored), len(byID))
	}
}

// readStream reads the touchpoint stream by sequence; false if it could not.
func readStream(js jetstream.JetStream) ([]stored, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream.TouchpointStream)
	if err != nil {
		return nil, false
	}
	info := s.CachedInfo()
	var out []stored
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		if err != nil {
			return nil, false
		}
		ev, err := stream.DecodeMsg(raw.Header, raw.Data)
		if err != nil {
			return nil, false
		}
		out = append(out, stored{Subject: raw.Subject, Header: raw.Header, Event: ev})
	}
	return out, true
}

func waitForLong(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
