package collector_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/services/collector"
)

// TestRawModes sends each mode as a hand-written request, as curl would.
func TestRawModes(t *testing.T) {
	e := newEnv(t, nil)
	url := e.url + "/v1/events"

	id1 := uid("raw-structured")
	resp, body := post(t, url, tokenCRM, map[string]string{"Content-Type": "application/cloudevents+json; charset=utf-8"}, structuredOrder("shop/nl", id1, "c-1"))
	r := decodeJSON[collector.Result](t, body)
	if resp.StatusCode != http.StatusAccepted || r.Status != "accepted" || r.Duplicate || r.Seq == 0 || r.ID != id1 || r.Stream != "TOUCHPOINTS" {
		t.Fatalf("structured: %d %s", resp.StatusCode, body)
	}

	id2 := uid("raw-binary")
	resp, body = post(t, url, tokenCRM, map[string]string{
		"Content-Type":   "application/json",
		"ce-specversion": "1.0",
		"ce-id":          id2,
		"ce-source":      "shop/nl",
		"ce-type":        touchpoint.TypeVisit,
		"ce-subject":     "c%2F1%20b", // percent-encoded "c/1 b"
		"ce-time":        time.Now().UTC().Format(time.RFC3339),
		"ce-campaignref": "spring%25sale",
	}, `{"channel":"web","url":"https://shop.example/p/1"}`)
	r = decodeJSON[collector.Result](t, body)
	if resp.StatusCode != http.StatusAccepted || r.Status != "accepted" || r.Seq == 0 {
		t.Fatalf("binary: %d %s", resp.StatusCode, body)
	}

	id3, id4 := uid("raw-batch"), uid("raw-batch")
	resp, body = post(t, url, tokenCRM, map[string]string{"Content-Type": "application/cloudevents-batch+json"},
		"["+structuredOrder("crm/x", id3, "c-2")+","+structuredOrder("crm/x", id4, "c-3")+"]")
	br := decodeJSON[collector.BatchResponse](t, body)
	if resp.StatusCode != http.StatusAccepted || br.Accepted != 2 || len(br.Results) != 2 || *br.Results[1].Index != 1 || br.Results[1].ID != id4 {
		t.Fatalf("batch: %d %s", resp.StatusCode, body)
	}

	got := e.storedEvents(t)
	counts := countByID(got)
	for _, k := range []string{"shop/nl " + id1, "shop/nl " + id2, "crm/x " + id3, "crm/x " + id4} {
		if counts[k] != 1 {
			t.Fatalf("%s stored %d times", k, counts[k])
		}
	}
	for _, s := range got {
		if s.Event.ID == id2 {
			if s.Event.Subject != "c/1 b" || s.Event.Extensions["campaignref"] != "spring%sale" {
				t.Fatalf("binary headers not percent-decoded: subject %q, ext %v", s.Event.Subject, s.Event.Extensions)
			}
		}
	}
}

// TestErrorCodes checks each refusal's status and the reason in its body.
func TestErrorCodes(t *testing.T) {
	e := newEnv(t, func(s *collector.Settings) {
		s.MaxBatchEvents = 3
		s.Burst = 3
		s.Rate = 0
	})
	url := e.url + "/v1/events"
	structured := map[string]string{"Content-Type": "application/cloudevents+json"}
	now := time.Now().UTC().Format(time.RFC3339)

	type fieldRule struct{ field, rule string }
	cases := []struct {
		name    string
		token   string
		header  map[string]string
		body    string
		code    int
		reason  string
		field   *fieldRule
		message string
	}{
		{name: "missing subject", token: tokenCRM, header: structured,
			body: `{"specversion":"1.0","id":"x1","source":"crm/a","type":"io.klantreis.touchpoint.visit.v1","time":"` + now + `","data":{"channel":"web"}}`,
			code: 400, reason: "invalid", field: &fieldRule{"subject", "required"}},
		{name: "score out of range", token: tokenSurvey, header: structured,
			body: `{"specversion":"1.0","id":"x2","source":"survey-tool","type":"io.klantreis.touchpoint.survey.v1","subject":"c","time":"` + now + `","data":{"survey_id":"s","score":11}}`,
			code: 400, reason: "invalid", field: &fieldRule{"data.score", "maximum"}},
		{name: "unknown type", token: tokenCRM, header: structured,
			body: `{"specversion":"1.0","id":"x3","source":"crm/a","type":"com.example.thing","subject":"c","time":"` + now + `","data":{}}`,
			code: 400, reason: "unknown_type", field: &fieldRule{"type", "enum"}},
		{name: "derived type", token: tokenCRM, header: structured,
			body: `{"specversion":"1.0","id":"x3b","source":"crm/a","type":"io.klantreis.customer.stage_changed.v1","subject":"c","time":"` + now + `","data":{}}`,
			code: 400, reason: "invalid", field: &fieldRule{"type", "enum"}},
		{name: "not JSON", token: tokenCRM, header: structured, body: `{"specversion":`, code: 400, reason: "malformed"},
		{name: "batch with a raw control character", token: tokenCRM, header: map[string]string{"Content-Type": "application/cloudevents-batch+json"},
			body: "[" + strings.Replace(structuredOrder("crm/a", "x12", "c"), `"c"`, "\"c\x01\"", 1) + "]", code: 400, reason: "malformed"},
		{name: "batch not an array", token: tokenCRM, header: map[string]string{"Content-Type": "application/cloudevents-batch+json"}, body: `{}`, code: 400, reason: "malformed"},
		{name: "binary without specversion value", token: tokenCRM,
			header: map[string]string{"Content-Type": "application/json", "ce-specversion": "0.3", "ce-id": "b", "ce-source": "crm/a", "ce-type": touchpoint.TypeVisit, "ce-subject": "c", "ce-time": now},
			body:   `{"channel":"web"}`, code: 400, reason: "invalid", field: &fieldRule{"specversion", "const"}},
		{name: "no token", header: structured, body: structuredOrder("crm/a", "x4", "c"), code: 401, reason: "unauthorized"},
		{name: "wrong token", token: "not-a-token-at-all-000", header: structured, body: structuredOrder("crm/a", "x5", "c"), code: 401, reason: "unauthorized"},
		{name: "source not allowed for token", token: tokenSurvey, header: structured, body: structuredOrder("crm/a", "x6", "c"), code: 403, reason: "forbidden"},
		{name: "event over 64 KiB", token: tokenCRM, header: structured,
			body: `{"specversion":"1.0","id":"x7","source":"crm/a","type":"io.klantreis.touchpoint.complaint.v1","subject":"c","time":"` + now + `","data":{"complaint_id":"k","status":"opened","category":"x","text":"` + strings.Repeat("a", 70000) + `"}}`,
			code: 413, reason: "too_large"},
		{name: "batch over its length", token: tokenCRM, header: map[string]string{"Content-Type": "application/cloudevents-batch+json"},
			body: "[" + strings.Repeat(structuredOrder("crm/a", "x8", "c")+",", 3) + structuredOrder("crm/a", "x9", "c") + "]", code: 413, reason: "too_large"},
		{name: "plain JSON without ce headers", token: tokenCRM, header: map[string]string{"Content-Type": "application/json"}, body: `{}`, code: 415, reason: "unsupported_media_type"},
		{name: "other event format", token: tokenCRM, header: map[string]string{"Content-Type": "application/cloudevents+xml"}, body: `<e/>`, code: 415, reason: "unsupported_media_type"},
		{name: "binary with non-JSON data", token: tokenCRM,
			header: map[string]string{"Content-Type": "text/plain", "ce-specversion": "1.0", "ce-id": "b", "ce-source": "crm/a", "ce-type": touchpoint.TypeVisit, "ce-subject": "c", "ce-time": now},
			body:   `hello`, code: 415, reason: "unsupported_media_type"},
		{name: "charset other than utf-8", token: tokenCRM, header: map[string]string{"Content-Type": "application/cloudevents+json; charset=latin1"}, body: `{}`, code: 415, reason: "unsupported_media_type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := post(t, url, tc.token, tc.header, tc.body)
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.code, body)
			}
			var got struct {
				Error  string                  `json:"error"`
				Errors []touchpoint.FieldError `json:"errors"`
			}
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("body is not JSON: %s", body)
			}
			if got.Error != tc.reason {
				t.Fatalf("reason %q, want %q: %s", got.Error, tc.reason, body)
			}
			if tc.field != nil {
				found := false
				for _, fe := range got.Errors {
					found = found || (fe.Field == tc.field.field && fe.Rule == tc.field.rule)
				}
				if !found {
					t.Fatalf("body does not name %s/%s: %s", tc.field.field, tc.field.rule, body)
				}
			}
			if tc.code == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
	if got := e.storedEvents(t); len(got) != 0 {
		t.Fatalf("refused requests stored %d events", len(got))
	}

	t.Run("every broken rule at once", func(t *testing.T) {
		resp, body := post(t, url, tokenCRM, structured,
			`{"specversion":"1.0","id":"x11","source":"crm/a","type":"io.klantreis.touchpoint.visit.v1","time":"nope","data":{"channel":"tv"}}`)
		r := decodeJSON[collector.Result](t, body)
		want := []string{"time/format", "subject/required", "data.channel/enum"}
		var got []string
		for _, fe := range r.Errors {
			got = append(got, fe.Field+"/"+fe.Rule)
		}
		if resp.StatusCode != 400 || strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("%d: errors %v, want %v: %s", resp.StatusCode, got, want, body)
		}
	})
	t.Run("too many headers", func(t *testing.T) {
		h := map[string]string{"Content-Type": "application/cloudevents+json"}
		for i := 0; i < 120; i++ {
			h["X-Pad-"+strconv.Itoa(i)] = "v"
		}
		resp, body := post(t, url, tokenCRM, h, structuredOrder("crm/a", "x10", "c"))
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || !strings.Contains(string(body), "headers_too_large") {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})
}

// TestRateLimit: a token over its budget gets 429 with Retry-After, and
// another token is not affected.
func TestRateLimit(t *testing.T) {
	e := newEnv(t, func(s *collector.Settings) {
		s.Rate = 1
		s.MaxBatchEvents = 5
		s.Burst = 5
	})
	url := e.url + "/v1/events"
	h := map[string]string{"Content-Type": "application/cloudevents-batch+json"}
	batch := func(source string, n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = structuredOrder(source, uid("rl"), "c")
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	if resp, body := post(t, url, tokenCRM, h, batch("crm/a", 5)); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("first batch: %d %s", resp.StatusCode, body)
	}
	resp, body := post(t, url, tokenCRM, h, batch("crm/a", 3))
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), `"rate_limited"`) {
		t.Fatalf("over budget: %d %s", resp.StatusCode, body)
	}
	ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 3 {
		t.Fatalf("Retry-After %q for 3 events at 1/s", resp.Header.Get("Retry-After"))
	}
	if resp, body := post(t, url, tokenSurvey, map[string]string{"Content-Type": "application/cloudevents+json"},
		structuredOrder("survey-tool", uid("rl"), "c")); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("other token limited too: %d %s", resp.StatusCode, body)
	}
	if got := len(e.storedEvents(t)); got != 6 {
		t.Fatalf("stored %d events, want 6 (the refused batch must store nothing)", got)
	}
}

// TestResendIsOneMessage: the same (source, id) sent again, in any mode,
// is flagged duplicate and stored once.
func TestResendIsOneMessage(t *testing.T) {
	e := newEnv(t, nil)
	url := e.url + "/v1/events"
	id := uid("dup")
	body := structuredOrder("crm/a", id, "c-9")
	resp, b := post(t, url, tokenCRM, map[string]string{"Content-Type": "application/cloudevents+json"}, body)
	first := decodeJSON[collector.Result](t, b)
	if resp.StatusCode != 202 || first.Duplicate {
		t.Fatalf("first: %d %s", resp.StatusCode, b)
	}
	resp, b = post(t, url, tokenCRM, map[string]string{"Content-Type": "application/cloudevents+json"}, body)
	second := decodeJSON[collector.Result](t, b)
	if resp.StatusCode != 202 || !second.Duplicate || second.Status != "duplicate" || second.Seq != first.Seq {
		t.Fatalf("resend: %d %s (first seq %d)", resp.StatusCode, b, first.Seq)
	}
	resp, b = post(t, url, tokenCRM, map[string]string{"Content-Type": "application/cloudevents-batch+json"}, "["+body+"]")
	br := decodeJSON[collector.BatchResponse](t, b)
	if resp.StatusCode != 202 || br.Duplicates != 1 || !br.Results[0].Duplicate {
		t.Fatalf("resend in a batch: %d %s", resp.StatusCode, b)
	}
	if n := countByID(e.storedEvents(t))["crm/a "+id]; n != 1 {
		t.Fatalf("stored %d times", n)
	}
}

// TestBatchSemantics: an invalid or forbidden event rejects only itself;
// the valid ones are stored and the results keep the order sent.
func TestBatchSemantics(t *testing.T) {
	e := newEnv(t, nil)
	url := e.url + "/v1/events"
	h := map[string]string{"Content-Type": "application/cloudevents-batch+json"}
	ok1, ok2 := uid("ok"), uid("ok")
	invalid := `{"specversion":"1.0","id":"bad","source":"crm/a","type":"io.klantreis.touchpoint.order.v1","subject":"c","time":"2024-01-01T00:00:00Z","data":{"order_id":"o","status":"lost","amount":"1","currency":"EUR"}}`
	body := "[" + structuredOrder("crm/a", ok1, "c-1") + "," + invalid + "," + structuredOrder("elsewhere", "f1", "c-1") + ",42," + structuredOrder("crm/a", ok2, "c-2") + "]"
	resp, b := post(t, url, tokenCRM, h, body)
	br := decodeJSON[collector.BatchResponse](t, b)
	if resp.StatusCode != http.StatusAccepted || br.Accepted != 2 || br.Rejected != 3 || len(br.Results) != 5 {
		t.Fatalf("mixed batch: %d %s", resp.StatusCode, b)
	}
	want := []struct {
		status string
		code   int
		reason string
	}{{"accepted", 0, ""}, {"rejected", 400, "invalid"}, {"rejected", 403, "forbidden"}, {"rejected", 400, "malformed"}, {"accepted", 0, ""}}
	for i, w := range want {
		r := br.Results[i]
		if *r.Index != i || r.Status != w.status || r.Code != w.code || r.Error != w.reason {
			t.Fatalf("result %d = %+v, want %+v", i, r, w)
		}
	}
	if fe := br.Results[1].Errors; len(fe) != 1 || fe[0].Field != "data.status" || fe[0].Rule != "enum" {
		t.Fatalf("invalid event's errors: %+v", fe)
	}
	counts := countByID(e.storedEvents(t))
	if len(counts) != 2 || counts["crm/a "+ok1] != 1 || counts["crm/a "+ok2] != 1 {
		t.Fatalf("stored %v", counts)
	}

	resp, b = post(t, url, tokenCRM, h, "["+invalid+"]")
	if resp.StatusCode != http.StatusBadRequest || decodeJSON[collector.BatchResponse](t, b).Rejected != 1 {
		t.Fatalf("all invalid: %d %s", resp.StatusCode, b)
	}
	resp, b = post(t, url, tokenCRM, h, "["+structuredOrder("elsewhere", "f2", "c")+"]")
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("all forbidden: %d %s", resp.StatusCode, b)
	}
	resp, b = post(t, url, tokenCRM, h, "[]")
	if br := decodeJSON[collector.BatchResponse](t, b); resp.StatusCode != http.StatusAccepted || len(br.Results) != 0 {
		t.Fatalf("empty batch: %d %s", resp.StatusCode, b)
	}
}

// TestWebhookHandshake: the CloudEvents webhook abuse-protection OPTIONS.
func TestWebhookHandshake(t *testing.T) {
	e := newEnv(t, func(s *collector.Settings) {
		s.WebhookOrigins = []string{"surveys.example.com"}
		s.Rate = 10
	})
	do := func(origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, e.url+"/v1/events", nil)
		req.Header.Set("WebHook-Request-Origin", origin)
		req.Header.Set("WebHook-Request-Rate", "120")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := do("surveys.example.com")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("WebHook-Allowed-Origin") != "surveys.example.com" ||
		resp.Header.Get("WebHook-Allowed-Rate") != "600" || !strings.Contains(resp.Header.Get("Allow"), "POST") {
		t.Fatalf("allowed origin: %d %v", resp.StatusCode, resp.Header)
	}
	if resp := do("evil.example.net"); resp.StatusCode != http.StatusForbidden || resp.Header.Get("WebHook-Allowed-Origin") != "" {
		t.Fatalf("other origin: %d %v", resp.StatusCode, resp.Header)
	}
}

// TestBrowserVisits: the tokenless endpoint for web pages.
func TestBrowserVisits(t *testing.T) {
	e := newEnv(t, func(s *collector.Settings) {
		s.BrowserSource = "web/shop"
		s.BrowserOrigins = []string{"https://shop.example"}
	})
	url := e.url + "/v1/visits"
	req, _ := http.NewRequest(http.MethodOptions, url, nil)
	req.Header.Set("Origin", "https://shop.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "https://shop.example" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}

	resp, b := post(t, url, "", map[string]string{"Origin": "https://shop.example", "Content-Type": "text/plain"},
		`{"id":"v-1","customer_id":"anon-7","url":"https://shop.example/p/2","session_id":"s9"}`)
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Access-Control-Allow-Origin") != "https://shop.example" {
		t.Fatalf("visit: %d %s %v", resp.StatusCode, b, resp.Header)
	}
	resp, b = post(t, url, "", map[string]string{"Origin": "https://evil.example"}, `{"customer_id":"anon-8"}`)
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("other origin: %d %s", resp.StatusCode, b)
	}
	resp, b = post(t, url, "", map[string]string{"Origin": "https://shop.example"}, `{"url":"https://shop.example/"}`)
	body := decodeJSON[collector.ErrorBody](t, b)
	if resp.StatusCode != http.StatusBadRequest || len(body.Errors) == 0 || body.Errors[0].Field != "customer_id" {
		t.Fatalf("missing customer: %d %s", resp.StatusCode, b)
	}
	resp, b = post(t, url, "", nil, `{"customer_id":"anon-7","type":"io.klantreis.touchpoint.order.v1"}`)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("unknown field (only visits may be sent): %d %s", resp.StatusCode, b)
	}
	resp, b = post(t, url, "", nil, `{"customer_id":"`+strings.Repeat("x", 3000)+`"}`)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("large body: %d %s", resp.StatusCode, b)
	}

	got := e.storedEvents(t)
	if len(got) != 1 {
		t.Fatalf("stored %d events, want 1", len(got))
	}
	ev := got[0].Event
	p, err := touchpoint.Validate(&ev, time.Now())
	if err != nil || ev.Source != "web/shop" || ev.Type != touchpoint.TypeVisit || ev.Subject != "anon-7" || ev.ID != "v-1" || p.Channel != "web" || p.SessionID != "s9" {
		t.Fatalf("stored %+v (payload %+v, err %v)", ev, p, err)
	}

	off := newEnv(t, nil)
	if resp, b := post(t, off.url+"/v1/visits", "", nil, `{"customer_id":"a"}`); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("disabled endpoint: %d %s", resp.StatusCode, b)
	}
}

// TestHealthReadyMetrics: /healthz, /readyz tracks the stream, /metrics
// counts requests and events.
func TestHealthReadyMetrics(t *testing.T) {
	e := newEnv(t, nil)
	get := func(path string) (int, string) {
		resp, err := http.Get(e.url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var sb strings.Builder
		_, _ = fmt.Fprint(&sb, readAll(t, resp))
		return resp.StatusCode, sb.String()
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if code, body := get("/readyz"); code != 200 {
		t.Fatalf("readyz %d %s", code, body)
	}
	post(t, e.url+"/v1/events", tokenCRM, map[string]string{"Content-Type": "application/cloudevents+json"}, structuredOrder("crm/a", uid("m"), "c"))
	post(t, e.url+"/v1/events", tokenCRM, map[string]string{"Content-Type": "application/cloudevents+json"}, `{"specversion":"1.0"}`)
	_, metrics := get("/metrics")
	for _, want := range []string{
		`journey_collector_requests_total{code="202",endpoint="events"} 1`,
		`journey_collector_requests_total{code="400",endpoint="events"} 1`,
		`journey_collector_events_total{kind="order",outcome="accepted",reason=""} 1`,
		`journey_collector_events_total{kind="unknown",outcome="rejected",reason="invalid"} 1`,
		`journey_collector_publish_seconds_count 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	ctx := t.Context()
	if err := e.js.DeleteStream(ctx, "TOUCHPOINTS"); err != nil {
		t.Fatal(err)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "TOUCHPOINTS") {
		t.Fatalf("readyz without the stream: %d %s", code, body)
	}
	// Connected, but nothing stores the subject: JetStream never acks.
	resp, b := post(t, e.url+"/v1/events", tokenCRM, map[string]string{"Content-Type": "application/cloudevents+json"}, structuredOrder("crm/a", uid("m"), "c"))
	if r := decodeJSON[collector.Result](t, b); resp.StatusCode != 503 || r.Error != "unavailable" || r.Status != "failed" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("without the stream: %d %s", resp.StatusCode, b)
	}
}

// TestBusy: beyond MaxConcurrent requests in flight the answer is 503 at
// once, not a queue.
func TestBusy(t *testing.T) {
	e := newEnv(t, func(s *collector.Settings) { s.MaxConcurrent = 1 })
	// The first request holds the only slot while its body trickles in. It
	// is written by hand on a raw connection: net/http's client keeps the
	// headers of a streamed body in its buffer until the body ends (unless
	// the body is slow to start), so the server might never see the
	// request while the test waits for it. Cleanups run last-in first-out,
	// so closing the connection comes before the server's Close, which
	// would otherwise wait for the half-sent request forever.
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	body := structuredOrder("crm/a", uid("slow"), "c")
	const head = 20
	if _, err := fmt.Fprintf(conn, "POST /v1/events HTTP/1.1\r\nHost: collector\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/cloudevents+json\r\nContent-Length: %d\r\n\r\n%s", tokenCRM, len(body), body[:head]); err != nil {
		t.Fatal(err)
	}
	// First the slow request must hold the slot (the in-flight gauge says
	// so): a failure here is not the limit's, but the request's arrival.
	waitFor(t, "the slow request to reach the handler (journey_collector_requests_in_flight 1)", func() bool {
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return strings.Contains(rec.Body.String(), "journey_collector_requests_in_flight 1")
	})
	var resp *http.Response
	var b []byte
	waitFor(t, "a busy answer", func() bool {
		resp, b = post(t, e.url+"/v1/events", tokenCRM, map[string]string{"Content-Type": "application/cloudevents+json"}, structuredOrder("crm/a", uid("busy"), "c"))
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	if !strings.Contains(string(b), `"busy"`) || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("busy answer: %s %v", b, resp.Header)
	}
	if _, err := conn.Write([]byte(body[head:])); err != nil {
		t.Fatal(err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	slow, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("slow request: %v", err)
	}
	slow.Body.Close()
	if slow.StatusCode != http.StatusAccepted {
		t.Fatalf("slow request: %d", slow.StatusCode)
	}
	resp, b = post(t, e.url+"/v1/events", tokenCRM, map[string]string{"Content-Type": "application/cloudevents+json"}, structuredOrder("crm/a", uid("after"), "c"))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("after the slot is free: %d %s", resp.StatusCode, b)
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}
