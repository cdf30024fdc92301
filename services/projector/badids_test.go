package projector_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/badids"
	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/stream"
)

// The projector applies the same identifier and subject rules as the
// writer: each bad case is a dead letter with its reason and no state.
func TestProjectorDeadLettersBadIdentifiersAndSubjects(t *testing.T) {
	br := freshStreams(t)
	cfg := br.config(warehousetest.Config(t))
	cases := badids.Cases("p-", time.Now().Add(-time.Hour))
	for _, c := range cases {
		if _, err := br.js.PublishMsg(context.Background(), c.Msg); err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
	}
	start(t, cfg)
	waitDrained(t, br.js, cfg.Projector.Durable, time.Minute)

	var reasons []string
	c, err := br.js.OrderedConsumer(context.Background(), stream.DeadLetterStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for {
		m, err := c.Next(jetstream.FetchMaxWait(time.Second))
		if err != nil {
			break
		}
		reasons = append(reasons, m.Headers().Get("Journey-Dead-Class")+": "+m.Headers().Get("Journey-Dead-Reason"))
	}
	want, valid := 0, 0
	for _, c := range cases {
		if c.Reason == "" {
			valid++
			continue
		}
		want++
		found := false
		for _, r := range reasons {
			found = found || strings.Contains(r, c.Reason)
		}
		if !found {
			t.Errorf("%s: no dead letter says %q (dead letters: %q)", c.Name, c.Reason, reasons)
		}
	}
	if len(reasons) != want {
		t.Fatalf("%d dead letters, want %d: %q", len(reasons), want, reasons)
	}
	states := kvStates(t, br.js, cfg.Projector.Bucket)
	if len(states) != valid || states["bad-nl x"] == nil || states["ok-1"] == nil {
		ids := make([]string, 0, len(states))
		for id := range states {
			ids = append(ids, id)
		}
		t.Fatalf("states of %q, want only the %d valid customers", ids, valid)
	}
}
