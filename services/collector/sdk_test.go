package collector_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
)

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// sdkEvent is an sdk-go event with the extensions a product system sends:
// distributed tracing, partitioning and a custom one.
func sdkEvent(t *testing.T, id, customer string) cloudevents.Event {
	t.Helper()
	ev := cloudevents.NewEvent()
	ev.SetID(id)
	ev.SetSource("crm/eu-west")
	ev.SetType(touchpoint.TypeSurvey)
	ev.SetSubject(customer)
	ev.SetTime(time.Now().UTC().Truncate(time.Millisecond))
	ev.SetDataSchema(touchpoint.SchemaURI(touchpoint.TypeSurvey))
	ev.SetExtension("traceparent", traceparent)
	ev.SetExtension("partitionkey", customer)
	ev.SetExtension("tenant", "acme")
	// sdk-go puts header values in verbatim, stray '%' included.
	ev.SetExtension("promo", "50% off")
	if err := ev.SetData(cloudevents.ApplicationJSON, map[string]any{"survey_id": "s-" + id, "score": 9, "comment": "fast delivery, 50% cheaper"}); err != nil {
		t.Fatal(err)
	}
	return ev
}

// TestSDKClientModes sends through the cloudevents sdk-go HTTP client, unmodified,
// in binary, structured and batch mode; every event must be in the stream
// exactly once with every attribute and extension as sent.
func TestSDKClientModes(t *testing.T) {
	e := newEnv(t, nil)
	client, err := cloudevents.NewClientHTTP(cehttp.WithTarget(e.url+"/v1/events"), cehttp.WithHeader("Authorization", "Bearer "+tokenCRM))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var sent []cloudevents.Event

	// A customer id with a space, a slash and a non-ASCII letter: binary
	// mode carries it in a header.
	bin := sdkEvent(t, uid("bin"), "klant/é 42")
	if res := client.Send(cloudevents.WithEncodingBinary(ctx), bin); !cloudevents.IsACK(res) {
		t.Fatalf("binary: %v", res)
	} else {
		assertStatus(t, res, http.StatusAccepted)
	}
	sent = append(sent, bin)

	st := sdkEvent(t, uid("structured"), "klant-43")
	if res := client.Send(cloudevents.WithEncodingStructured(ctx), st); !cloudevents.IsACK(res) {
		t.Fatalf("structured: %v", res)
	} else {
		assertStatus(t, res, http.StatusAccepted)
	}
	sent = append(sent, st)

	batch := []cloudevents.Event{sdkEvent(t, uid("batch"), "klant-44"), sdkEvent(t, uid("batch"), "klant-45"), sdkEvent(t, uid("batch"), "klant-44")}
	req, err := cehttp.NewHTTPRequestFromEvents(ctx, e.url+"/v1/events", batch)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tokenCRM)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var br struct {
		Accepted int `json:"accepted"`
		Results  []struct {
			Index  int    `json:"index"`
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"results"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&br); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || br.Accepted != 3 || len(br.Results) != 3 {
		t.Fatalf("batch: status %d, %+v", resp.StatusCode, br)
	}
	for i, r := range br.Results {
		if r.Index != i || r.ID != batch[i].ID() || r.Status != "accepted" {
			t.Fatalf("batch result %d out of order or not accepted: %+v", i, r)
		}
	}
	sent = append(sent, batch...)

	got := e.storedEvents(t)
	if len(got) != len(sent) {
		t.Fatalf("stream holds %d events, sent %d", len(got), len(sent))
	}
	byID := map[string]stored{}
	for _, s := range got {
		if _, dup := byID[s.Event.ID]; dup {
			t.Fatalf("event %s stored twice", s.Event.ID)
		}
		byID[s.Event.ID] = s
	}
	for _, want := range sent {
		s, ok := byID[want.ID()]
		if !ok {
			t.Fatalf("event %s missing from the stream", want.ID())
		}
		ev := s.Event
		if ev.Source != want.Source() || ev.Type != want.Type() || ev.Subject != want.Subject() ||
			!ev.Time.Equal(want.Time()) || ev.DataSchema != want.DataSchema() {
			t.Errorf("%s: attributes changed: got %+v", want.ID(), ev)
		}
		wantExt := map[string]string{"traceparent": traceparent, "partitionkey": want.Subject(), "tenant": "acme", "promo": "50% off"}
		if !reflect.DeepEqual(ev.Extensions, wantExt) {
			t.Errorf("%s: extensions = %v, want %v", want.ID(), ev.Extensions, wantExt)
		}
		var gotData, wantData any
		if err := json.Unmarshal(ev.Data, &gotData); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(want.Data(), &wantData); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(gotData, wantData) {
			t.Errorf("%s: data = %s, want %s", want.ID(), ev.Data, want.Data())
		}
		if s.Subject[:len("touchpoint.")] != "touchpoint." || s.Header.Get("Nats-Msg-Id") != stream.MsgID(want.Source(), want.ID()) {
			t.Errorf("%s: stored on %s with msg id %q", want.ID(), s.Subject, s.Header.Get("Nats-Msg-Id"))
		}
	}
}

func assertStatus(t *testing.T, res error, code int) {
	t.Helper()
	var hr *cehttp.Result
	if !errors.As(res, &hr) {
		t.Fatalf("result %v is not an HTTP result", res)
	}
	if hr.StatusCode != code {
		t.Fatalf("status %d, want %d (%v)", hr.StatusCode, code, res)
	}
}
