package stream_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/natsserver/natstest"
	"github.com/klantreis/journey/pkg/stream"
)

// JOURNEY_NATS_URL takes several servers, comma-separated, spaces allowed.
// With a dead one in the list, Connect reaches the living one and JetStream
// answers. nats.go shuffles the list, so the connection is made eight
// times: a connect that gave up on a dead first server would fail here
// (the dead one comes first in about half of the runs).
func TestConnectSkipsADeadServerInTheList(t *testing.T) {
	live := natstest.URL(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "nats://" + l.Addr().String()
	l.Close()
	topo := stream.DefaultTopology()
	var slowest time.Duration
	for i := 0; i < 8; i++ {
		start := time.Now()
		nc, js, err := stream.Connect(stream.Conn{URL: dead + " , " + live, ReconnectWait: 100 * time.Millisecond, RequestTimeout: 5 * time.Second}, nil)
		if err != nil {
			t.Fatalf("connect %d: %v", i, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = topo.Ensure(ctx, js)
		cancel()
		took := time.Since(start)
		slowest = max(slowest, took)
		if err != nil {
			t.Fatalf("connect %d: JetStream through %s: %v", i, nc.ConnectedUrl(), err)
		}
		if nc.ConnectedUrl() != live {
			t.Fatalf("connect %d: connected to %s, want %s", i, nc.ConnectedUrl(), live)
		}
		nc.Close()
	}
	t.Logf("8 connections with %s listed first among 2: each on %s, JetStream answering within %.2fs", dead, live, slowest.Seconds())
}
