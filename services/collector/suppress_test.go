package collector_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/natsserver/natstest"
	"github.com/klantreis/journey/pkg/ops"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/suppression"
	"github.com/klantreis/journey/services/collector"
)

// An erased customer's new events are refused with 422 customer_erased,
// single, in a batch (beside an accepted one) and on the browser endpoint,
// and none reaches the touchpoint stream; the refusals are counted.
func TestErasedCustomersEventsAreRefused(t *testing.T) {
	url := natstest.URL(t)
	s := testSettings()
	s.BrowserSource = "web/shop"
	s.BrowserOrigins = []string{"https://shop.example"}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	conn := stream.Conn{URL: url, ReconnectWait: 100 * time.Millisecond, RequestTimeout: 2 * time.Second}
	nc, _, err := stream.Connect(conn, log)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := collector.NewJetStream(nc, conn, s)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := stream.DefaultTopology().Ensure(ctx, js); err != nil {
		t.Fatal(err)
	}
	kv, err := suppression.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := suppression.Put(ctx, kv, []string{suppression.Hash("c-erased")}, suppression.Entry{At: time.Now(), Erasure: "e1"}); err != nil {
		t.Fatal(err)
	}
	h := ops.NewHealth()
	c, err := collector.New(s, nc, js, h, log)
	if err != nil {
		t.Fatal(err)
	}
	c.FollowSuppression(ctx, js, 1) // returns once the list is loaded
	srv := httptest.NewServer(c.Handler())
	defer srv.Close()
	e := &env{url: srv.URL, js: js, nc: nc, health: h}

	structured := map[string]string{"Content-Type": "application/cloudevents+json"}
	resp, b := post(t, e.url+"/v1/events", tokenCRM, structured, structuredOrder("shop/nl", "o-erased", "c-erased"))
	res := decodeJSON[collector.Result](t, b)
	if resp.StatusCode != http.StatusUnprocessableEntity || res.Error != collector.ReasonErased || !strings.Contains(res.Message, "erased") {
		t.Fatalf("single event of an erased customer: %d %s", resp.StatusCode, b)
	}
	resp, b = post(t, e.url+"/v1/events", tokenCRM, map[string]string{"Content-Type": "application/cloudevents-batch+json"},
		"["+structuredOrder("shop/nl", "o-kept", "c-kept")+","+structuredOrder("shop/nl", "o-erased-2", "c-erased")+"]")
	batch := decodeJSON[collector.BatchResponse](t, b)
	if batch.Accepted != 1 || batch.Rejected != 1 || batch.Results[1].Error != collector.ReasonErased || batch.Results[1].Code != http.StatusUnprocessableEntity {
		t.Fatalf("batch: %d %s", resp.StatusCode, b)
	}
	resp, b = post(t, e.url+"/v1/visits", "", map[string]string{"Origin": "https://shop.example", "Content-Type": "text/plain"},
		`{"id":"v-1","customer_id":"c-erased","url":"https://shop.example/p/2"}`)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(b), collector.ReasonErased) {
		t.Fatalf("browser visit of an erased customer: %d %s", resp.StatusCode, b)
	}
	stored := e.storedEvents(t)
	if len(stored) != 1 || stored[0].Event.Subject != "c-kept" {
		t.Fatalf("stream holds %+v, want only c-kept's order", stored)
	}
	rec := httptest.NewRecorder()
	c.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "journey_collector_suppressed_total 3") {
		t.Errorf("metrics lack journey_collector_suppressed_total 3:\n%s", grepLines(rec.Body.String(), "suppressed"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
