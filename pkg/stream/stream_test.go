package stream_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/natsserver"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
)

var natsURL string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stream-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv, err := natsserver.Start(natsserver.Options{StoreDir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	natsURL = srv.ClientURL()
	code := m.Run()
	srv.Shutdown()
	os.RemoveAll(dir)
	os.Exit(code)
}

// connect returns a JetStream context in a fresh account-wide domain: each
// test uses its own stream names via a fresh server state, so we delete the
// journey streams at cleanup.
func connect(t *testing.T) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		for _, s := range []string{stream.TouchpointStream, stream.DerivedStream, stream.DeadLetterStream} {
			_ = js.DeleteStream(ctx, s)
		}
		nc.Close()
	})
	return js
}

func visit(t *testing.T, source, id, customer string) touchpoint.Event {
	t.Helper()
	e, err := touchpoint.New(source, id, customer, time.Now(), touchpoint.Visit{Common: touchpoint.Common{Channel: "web"}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestSmokePartitionAndFilter(t *testing.T) {
	js := connect(t)
	ctx := context.Background()
	topo := stream.DefaultTopology()
	if err := topo.Ensure(ctx, js); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		e := visit(t, "shop", fmt.Sprint("e", i), fmt.Sprintf("cust.%d", i%3))
		m, err := stream.NewFactMsg(&e)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	c, err := js.OrderedConsumer(ctx, stream.TouchpointStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{stream.CustomerFilter("cust.1")}})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.FetchNoWait(100)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range batch.Messages() {
		n++
		t.Log(m.Subject())
	}
	if n != 3 {
		t.Fatalf("got %d", n)
	}
}
