package touchpoint_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/klantreis/journey/pkg/touchpoint"
)

// fullEvent sets every attribute, extensions included, with values that
// need escaping in JSON and in headers.
func fullEvent() touchpoint.Event {
	return ev(touchpoint.TypeOrder, `{"order_id":"o-\"1\"","status":"placed","amount":"12.50","currency":"EUR","items":2,"account_id":"acmé ✓"}`,
		func(e *touchpoint.Event) {
			e.ID = "id with spaces/and\"quotes"
			e.Source = "urn:shop:eu-west"
			e.Subject = "acme.nl/klant 42 ✓"
			e.Time = time.Date(2026, 2, 28, 23, 59, 59, 123456789, time.UTC)
			e.Extensions = map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tenant": "nl", "seq": "42"}
		})
}

func compactJSON(t *testing.T, b []byte) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return buf.String()
}

func sameEvent(t *testing.T, got, want touchpoint.Event) {
	t.Helper()
	if !got.Time.Equal(want.Time) {
		t.Errorf("time %v != %v", got.Time, want.Time)
	}
	got.Time, want.Time = time.Time{}, time.Time{}
	gd, wd := compactJSON(t, got.Data), compactJSON(t, want.Data)
	got.Data, want.Data = nil, nil
	if len(got.Extensions) == 0 && len(want.Extensions) == 0 {
		got.Extensions, want.Extensions = nil, nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("attributes differ:\n got %+v\nwant %+v", got, want)
	}
	if gd != wd {
		t.Errorf("data %s != %s", gd, wd)
	}
}

func TestStructuredRoundTrip(t *testing.T) {
	t.Parallel()
	want := fullEvent()
	b := want.MarshalStructured()
	if !json.Valid(b) {
		t.Fatalf("not JSON: %s", b)
	}
	got, err := touchpoint.UnmarshalStructured(b)
	if err != nil {
		t.Fatal(err)
	}
	sameEvent(t, got, want)
	if _, err := touchpoint.Validate(&got, now); err != nil {
		t.Fatal(err)
	}
}

func TestBinaryRoundTrip(t *testing.T) {
	t.Parallel()
	for _, percent := range []bool{false, true} {
		want := fullEvent()
		h := touchpoint.Header{}
		want.SetBinaryHeaders(h)
		if !touchpoint.IsBinary(h) {
			t.Fatal("IsBinary false on binary headers")
		}
		if percent {
			// The HTTP binding percent-encodes header values.
			for k, v := range h {
				if strings.HasPrefix(k, touchpoint.HeaderPrefix) {
					h[k] = []string{url.PathEscape(v[0])}
				}
			}
		}
		got, err := touchpoint.FromBinary(h, want.Data, percent)
		if err != nil {
			t.Fatal(err)
		}
		sameEvent(t, got, want)
	}
}

// TestStructuredBinaryStructured crosses the modes: structured in,
// binary over the wire, structured out, nothing lost.
func TestStructuredBinaryStructured(t *testing.T) {
	t.Parallel()
	want := fullEvent()
	e1, err := touchpoint.UnmarshalStructured(want.MarshalStructured())
	if err != nil {
		t.Fatal(err)
	}
	h := touchpoint.Header{}
	e1.SetBinaryHeaders(h)
	e2, err := touchpoint.FromBinary(h, e1.Data, false)
	if err != nil {
		t.Fatal(err)
	}
	e3, err := touchpoint.UnmarshalStructured(e2.MarshalStructured())
	if err != nil {
		t.Fatal(err)
	}
	sameEvent(t, e3, want)
}

func TestBinaryHeaderCase(t *testing.T) {
	t.Parallel()
	want := fullEvent()
	h := touchpoint.Header{}
	want.SetBinaryHeaders(h)
	// Transports canonicalise header names (Ce-Id); decoding must not care.
	canon := touchpoint.Header{}
	for k, v := range h {
		canon[strings.ToUpper(k[:1])+k[1:]] = v
	}
	got, err := touchpoint.FromBinary(canon, want.Data, false)
	if err != nil {
		t.Fatal(err)
	}
	sameEvent(t, got, want)
}

func TestBinaryErrors(t *testing.T) {
	t.Parallel()
	base := func() touchpoint.Header {
		h := touchpoint.Header{}
		e := fullEvent()
		e.SetBinaryHeaders(h)
		return h
	}
	for name, tc := range map[string]struct {
		edit    func(touchpoint.Header)
		percent bool
		field   string
		rule    string
	}{
		"no specversion":  {func(h touchpoint.Header) { delete(h, "ce-specversion") }, false, "specversion", "required"},
		"specversion 0.3": {func(h touchpoint.Header) { h["ce-specversion"] = []string{"0.3"} }, false, "specversion", "const"},
		"bad time":        {func(h touchpoint.Header) { h["ce-time"] = []string{"yesterday"} }, false, "time", "format"},
		"bad utf8":        {func(h touchpoint.Header) { h["ce-subject"] = []string{"\xff"} }, false, "subject", "utf8"},
		"bad percent":     {func(h touchpoint.Header) { h["ce-subject"] = []string{"a%zz"} }, true, "subject", "format"},
		// Two ids, or an id under two spellings of the header, would make
		// the event's identity depend on which one a reader takes.
		"id twice":            {func(h touchpoint.Header) { h["ce-id"] = []string{"a", "b"} }, false, "id", "duplicate"},
		"id in two spellings": {func(h touchpoint.Header) { h["Ce-Id"] = []string{"other"} }, false, "id", "duplicate"},
	} {
		t.Run(name, func(t *testing.T) {
			h := base()
			tc.edit(h)
			_, err := touchpoint.FromBinary(h, []byte(`{}`), tc.percent)
			assertFieldError(t, err, tc.field, tc.rule)
		})
	}
}

func TestStructuredErrors(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		in, field, rule string
	}{
		"no specversion":    {`{"id":"1","source":"s","type":"t"}`, "specversion", "required"},
		"specversion 0.3":   {`{"specversion":"0.3","id":"1","source":"s","type":"t"}`, "specversion", "const"},
		"id number":         {`{"specversion":"1.0","id":1,"source":"s","type":"t"}`, "id", "type"},
		"bad time":          {`{"specversion":"1.0","id":"1","source":"s","type":"t","time":"2026-13-01"}`, "time", "format"},
		"data and base64":   {`{"specversion":"1.0","id":"1","source":"s","type":"t","data":{},"data_base64":"e30="}`, "data", "oneOf"},
		"bad base64":        {`{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":"!!"}`, "data_base64", "format"},
		"extension object":  {`{"specversion":"1.0","id":"1","source":"s","type":"t","x":{}}`, "x", "type"},
		"bad utf8 in value": {"{\"specversion\":\"1.0\",\"id\":\"\xff\",\"source\":\"s\",\"type\":\"t\"}", "id", "utf8"},
		"id twice":          {`{"specversion":"1.0","id":"1","source":"s","type":"t","id":"2"}`, "id", "duplicate"},
		"extension twice":   {`{"specversion":"1.0","id":"1","source":"s","type":"t","x":1,"x":"1"}`, "x", "duplicate"},
		"data twice":        {`{"specversion":"1.0","id":"1","source":"s","type":"t","data":{},"data":[]}`, "data", "duplicate"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := touchpoint.UnmarshalStructured([]byte(tc.in))
			assertFieldError(t, err, tc.field, tc.rule)
		})
	}
	for _, in := range []string{``, `[]`, `"x"`, `{`, `null`} {
		if _, err := touchpoint.UnmarshalStructured([]byte(in)); !errors.Is(err, touchpoint.ErrMalformed) {
			t.Errorf("%q: want ErrMalformed, got %v", in, err)
		}
	}
}

func TestStructuredDataBase64AndTypedExtensions(t *testing.T) {
	t.Parallel()
	in := `{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":"eyJjaGFubmVsIjoid2ViIn0=","n":5,"ok":true,"nothing":null}`
	e, err := touchpoint.UnmarshalStructured([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if string(e.Data) != `{"channel":"web"}` {
		t.Fatalf("data %q", e.Data)
	}
	if e.Extensions["n"] != "5" || e.Extensions["ok"] != "true" {
		t.Fatalf("extensions %v", e.Extensions)
	}
	if _, ok := e.Extensions["nothing"]; ok {
		t.Fatal("a null attribute must count as absent")
	}
	// Data that is not JSON travels as data_base64 and comes back intact.
	e.Data = []byte{0, 1, 2, 0xff}
	got, err := touchpoint.UnmarshalStructured(e.MarshalStructured())
	if err != nil || !bytes.Equal(got.Data, e.Data) {
		t.Fatalf("binary data: %v %v", got.Data, err)
	}
}

// sdkEvent builds the same event as fullEvent with cloudevents/sdk-go.
func sdkEvent(t *testing.T) cloudevents.Event {
	t.Helper()
	want := fullEvent()
	ce := cloudevents.New()
	ce.SetID(want.ID)
	ce.SetSource(want.Source)
	ce.SetType(want.Type)
	ce.SetSubject(want.Subject)
	ce.SetTime(want.Time)
	ce.SetDataSchema(want.DataSchema)
	for k, v := range want.Extensions {
		ce.SetExtension(k, v)
	}
	if err := ce.SetData(touchpoint.ContentTypeJSON, json.RawMessage(want.Data)); err != nil {
		t.Fatal(err)
	}
	if err := ce.Validate(); err != nil {
		t.Fatal(err)
	}
	return ce
}

// TestDecodesSDKEvents: what sdk-go producers send (json.Marshal of an
// event.Event, the structured payload of its NATS/JetStream sender) decodes.
func TestDecodesSDKEvents(t *testing.T) {
	t.Parallel()
	ce := sdkEvent(t)
	b, err := json.Marshal(ce)
	if err != nil {
		t.Fatal(err)
	}
	got, err := touchpoint.UnmarshalStructured(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	sameEvent(t, got, fullEvent())
	if _, err := touchpoint.Validate(&got, now); err != nil {
		t.Fatal(err)
	}
}

// TestSDKDecodesOurEvents: our structured encoding is a CloudEvent that
// sdk-go parses to the same attributes and data.
func TestSDKDecodesOurEvents(t *testing.T) {
	t.Parallel()
	want := fullEvent()
	var ce cloudevents.Event
	if err := json.Unmarshal(want.MarshalStructured(), &ce); err != nil {
		t.Fatal(err)
	}
	if err := ce.Validate(); err != nil {
		t.Fatal(err)
	}
	if ce.SpecVersion() != "1.0" || ce.ID() != want.ID || ce.Source() != want.Source || ce.Type() != want.Type ||
		ce.Subject() != want.Subject || !ce.Time().Equal(want.Time) || ce.DataSchema() != want.DataSchema ||
		ce.DataContentType() != want.DataContentType {
		t.Fatalf("sdk-go read %s", ce.String())
	}
	for k, v := range want.Extensions {
		if got := ce.Extensions()[k]; got != v {
			t.Errorf("extension %s: %v != %v", k, got, v)
		}
	}
	if compactJSON(t, ce.Data()) != compactJSON(t, want.Data) {
		t.Fatalf("data %s", ce.Data())
	}
	// And sdk-go's own encoding of what it read decodes back to ours.
	b, err := json.Marshal(ce)
	if err != nil {
		t.Fatal(err)
	}
	got, err := touchpoint.UnmarshalStructured(b)
	if err != nil {
		t.Fatal(err)
	}
	sameEvent(t, got, want)
}

func TestJSONStringEscaping(t *testing.T) {
	t.Parallel()
	// Control characters, quotes, backslashes, U+2028 and invalid UTF-8 in
	// attributes must all produce JSON that encoding/json reads back.
	for _, s := range []string{"\x00\x01\x1f", `"\`, "a\u2028b\u2029c", "tab\tnl\ncr\r", "bad\xffutf8", "ünï✓"} {
		e := ev(touchpoint.TypeVisit, validVisit, func(e *touchpoint.Event) { e.Subject = s })
		b := e.MarshalStructured()
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%q: %v: %s", s, err, b)
		}
		want := strings.ToValidUTF8(s, "\ufffd")
		if m["subject"] != want {
			t.Fatalf("%q: got %q", s, m["subject"])
		}
	}
}
