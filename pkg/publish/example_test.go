package publish_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/klantreis/journey/internal/natsserver"
	"github.com/klantreis/journey/pkg/publish"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
)

// A product system reports an order. Publish validates the event, sends it
// and returns once the stream has stored it.
func Example() {
	ctx := context.Background()
	url, stop := exampleServer() // a broker of the example's own
	defer stop()
	nc, js, err := stream.Connect(stream.Conn{URL: url, Name: "webshop"}, slog.Default())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	// journey's services create the streams; here the example does.
	topo := stream.DefaultTopology()
	if err := topo.Ensure(ctx, js); err != nil {
		fmt.Println(err)
		return
	}

	p, err := publish.New(js, publish.MaxPending(1024), publish.AckTimeout(2*time.Second))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close(ctx) // drains what is in flight

	e, err := touchpoint.New("webshop", "order-2026-0042", "acme.nl/42", time.Now(), touchpoint.Order{
		Common:   touchpoint.Common{AccountID: "acme", ContactID: "jan", DMURole: "buyer", Channel: "web"},
		OrderID:  "2026-0042",
		Status:   touchpoint.StatusPlaced,
		Amount:   touchpoint.Amount{Cents: 124950}, // 1249.50
		Currency: "EUR",
		Items:    3,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := p.Publish(ctx, e)
	fmt.Println("stored:", err == nil, "seq:", res.Seq, "duplicate:", res.Duplicate)

	// Sending the same event again (same source and id) stores nothing.
	res, err = p.Publish(ctx, e)
	fmt.Println("resend stored:", err == nil, "seq:", res.Seq, "duplicate:", res.Duplicate)

	// A bad event is refused before it is sent; the error names the field.
	bad, _ := touchpoint.New("survey-tool", "s-1", "acme.nl/42", time.Now(), touchpoint.Survey{SurveyID: "nps", Score: 11})
	_, err = p.Publish(ctx, bad)
	fmt.Println(err)

	// Output:
	// stored: true seq: 1 duplicate: false
	// resend stored: true seq: 1 duplicate: true
	// publish: io.klantreis.touchpoint.survey.v1 "s-1" from "survey-tool": invalid event: data.score: must be at most 10, got 11
}

// exampleServer starts an embedded broker with a store of its own: the
// package's shared test server had just deleted and recreated streams of
// the same name, whose files a loaded machine had not yet removed (CI:
// "error creating store for stream").
func exampleServer() (url string, stop func()) {
	dir, err := os.MkdirTemp("", "publish-example-")
	if err != nil {
		panic(err)
	}
	s, err := natsserver.Start(natsserver.Options{StoreDir: dir})
	if err != nil {
		panic(err)
	}
	return s.ClientURL(), func() { s.Shutdown(); _ = os.RemoveAll(dir) }
}
