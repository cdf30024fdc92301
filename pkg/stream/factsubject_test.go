package stream_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
)

// A producer that publishes straight to NATS must build the subject with
// the customer key: the customer id as it is ("acme.nl/42" has a dot) lies
// outside the stream, which JetStream answers with "no response from
// stream" (docs/publisher.md).
func TestFactSubjectIsStoredAndARawOneIsNot(t *testing.T) {
	js := ensure(t, stream.DefaultTopology())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := touchpoint.New("webshop", "order-1", "acme.nl/42", time.Now(), touchpoint.Visit{Common: touchpoint.Common{Channel: "web"}})
	if err != nil {
		t.Fatal(err)
	}
	subject, err := stream.FactSubject(&e)
	if err != nil {
		t.Fatal(err)
	}
	if subject != "touchpoint.visit.acme_2Enl_2F42" {
		t.Fatalf("FactSubject = %q", subject)
	}
	if _, err := js.PublishMsg(ctx, stream.NewMsg(subject, &e)); err != nil {
		t.Fatalf("publish on %s: %v", subject, err)
	}
	raw := "touchpoint.visit." + e.Subject
	_, err = js.PublishMsg(ctx, stream.NewMsg(raw, &e))
	if !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Fatalf("publish on %s = %v, want ErrNoStreamResponse", raw, err)
	}
	t.Logf("publish on %s: %v", raw, err)

	e.Type = "com.example.not-a-touchpoint"
	if _, err := stream.FactSubject(&e); !errors.Is(err, stream.ErrNotFact) {
		t.Fatalf("FactSubject of type %q = %v, want ErrNotFact", e.Type, err)
	}
}
