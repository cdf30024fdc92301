package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
)

// PublishFacts publishes events to TOUCHPOINTS as fact messages,
// asynchronously, awaiting every ack a window at a time (at most window
// unacknowledged; 2000 when window <= 0). A window keeps a test under
// -race on 2 cores clear of the client's limit of outstanding publishes,
// which once stalled in CI. It fails t on a refused publish or an ack not
// back within 30 s.
func PublishFacts(t testing.TB, js jetstream.JetStream, events []touchpoint.Event, window int) {
	t.Helper()
	if window <= 0 {
		window = 2000
	}
	futures := make([]jetstream.PubAckFuture, 0, window)
	flush := func() {
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				t.Fatalf("publish: %v", err)
			case <-time.After(30 * time.Second):
				t.Fatal("publish: no ack within 30s")
			}
		}
		futures = futures[:0]
	}
	for i := range events {
		m, err := stream.NewFactMsg(&events[i])
		if err != nil {
			t.Fatal(err)
		}
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			t.Fatal(err)
		}
		if futures = append(futures, f); len(futures) == window {
			flush()
		}
	}
	flush()
}
