package touchpoint_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/klantreis/journey/pkg/touchpoint"
)

// The fuzz targets hold the decoder's promise: bad input is a typed error,
// never a panic, and whatever decodes re-encodes to the same event.

func isTyped(err error) bool {
	return errors.Is(err, touchpoint.ErrInvalid) || errors.Is(err, touchpoint.ErrMalformed) || errors.Is(err, touchpoint.ErrUnknownType)
}

// decoded holds a decoder's result to the contract both decoders share:
// an error is one of the package's typed errors, and so is a decoded
// event's validation error. It reports whether the event was decoded.
func decoded(t *testing.T, e *touchpoint.Event, err error) bool {
	t.Helper()
	if err != nil {
		if !isTyped(err) {
			t.Fatalf("untyped error %T: %v", err, err)
		}
		return false
	}
	if _, err := touchpoint.Validate(e, now); err != nil && !isTyped(err) {
		t.Fatalf("Validate: untyped error %v", err)
	}
	return true
}

func FuzzUnmarshalStructured(f *testing.F) {
	for _, e := range []touchpoint.Event{fullEvent(), ev(touchpoint.TypeSurvey, validSurvey), ev(touchpoint.TypeVisit, `[1]`)} {
		f.Add(e.MarshalStructured())
	}
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":"AAE="}`))
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"s","type":"t","data":"text","datacontenttype":"text/plain"}`))
	f.Add([]byte(`{"specversion":"1.0","x":1.5e300,"y":false,"z":null,"time":"2026-01-01T00:00:00+01:00"}`))
	f.Add([]byte(`[{"a":1}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := touchpoint.UnmarshalStructured(b)
		if !decoded(t, &e, err) {
			return
		}
		out := e.MarshalStructured()
		if !json.Valid(out) {
			t.Fatalf("re-encoding is not JSON: %s", out)
		}
		e2, err := touchpoint.UnmarshalStructured(out)
		if err != nil {
			t.Fatalf("re-encoding does not decode: %v\n%s", err, out)
		}
		if e2.ID != e.ID || e2.Source != e.Source || e2.Type != e.Type || e2.Subject != e.Subject ||
			!e2.Time.Equal(e.Time) || e2.DataContentType != e.DataContentType || e2.DataSchema != e.DataSchema ||
			len(e2.Extensions) != len(e.Extensions) || string(e2.Data) != string(e.Data) {
			t.Fatalf("round trip changed the event:\n%+v\n%+v", e, e2)
		}
	})
}

func FuzzFromBinary(f *testing.F) {
	f.Add("1.0", "id-1", "shop", touchpoint.TypeVisit, "c-1", "2026-01-02T03:04:05Z", "traceparent", "00-x", "application/json", []byte(validVisit), false)
	f.Add("1.0", "%41", "shop", touchpoint.TypeOrder, "a%2Fb", "2026-01-02T03:04:05.999999999+02:00", "Bad-Name", "", "", []byte(validOrder), true)
	f.Add("", "", "", "", "", "", "", "", "", []byte(nil), true)
	f.Fuzz(func(t *testing.T, spec, id, source, typ, subject, at, extName, extVal, ct string, body []byte, percent bool) {
		h := touchpoint.Header{
			"ce-specversion": {spec}, "ce-id": {id}, "Ce-Source": {source}, "CE-TYPE": {typ},
			"ce-subject": {subject}, "ce-time": {at}, "ce-" + extName: {extVal}, "Content-Type": {ct},
		}
		e, err := touchpoint.FromBinary(h, body, percent)
		if !decoded(t, &e, err) {
			return
		}
		if percent {
			return // headers were encoded by hand; the round trip below is for the NATS binding
		}
		h2 := touchpoint.Header{}
		e.SetBinaryHeaders(h2)
		e2, err := touchpoint.FromBinary(h2, e.Data, false)
		if err != nil {
			t.Fatalf("re-encoding does not decode: %v", err)
		}
		if e2.ID != e.ID || e2.Source != e.Source || e2.Type != e.Type || e2.Subject != e.Subject || !e2.Time.Equal(e.Time) {
			t.Fatalf("round trip changed the event:\n%+v\n%+v", e, e2)
		}
	})
}

// FuzzDecodePayload also runs the differential: whatever Validate accepts,
// the published JSON Schema accepts.
func FuzzDecodePayload(f *testing.F) {
	for _, s := range []string{validVisit, validQuote, validOrder, validComplaint, validSurvey, validOffboarded,
		`{"amount":1e2}`, `{"score":9.0}`, `{"items":1e300}`, `{}`, `[]`, `{"amount":"0.07"}`, `{"channel":"web","channel":"fax"}`} {
		for k := range touchpoint.FactKinds() {
			f.Add(uint8(k), []byte(s))
		}
	}
	set, err := touchpoint.Schemas()
	if err != nil {
		f.Fatal(err)
	}
	kinds := touchpoint.FactKinds()
	f.Fuzz(func(t *testing.T, k uint8, data []byte) {
		kind := kinds[int(k)%len(kinds)]
		if _, err := touchpoint.DecodePayload(kind, data); err != nil && !isTyped(err) {
			t.Fatalf("untyped error %T: %v", err, err)
		}
		e := ev(touchpoint.TypeOf(kind), string(data))
		e.Time = now.Add(-time.Minute)
		_, verr := touchpoint.Validate(&e, now)
		serr := set.ValidateData(e.Type, data)
		if verr == nil && serr != nil {
			t.Fatalf("Validate accepts what the schema rejects: %s\n%v", data, serr)
		}
		// The converse, except for invalid UTF-8, which the schema's JSON
		// reader silently replaces, and a property given twice, of which it
		// keeps the last: Validate refuses both on purpose.
		if serr == nil && verr != nil && utf8.Valid(data) && !hasDuplicateKey(data) {
			t.Fatalf("Validate rejects what the schema accepts: %s\n%v", data, verr)
		}
	})
}

// hasDuplicateKey reports whether a JSON object names a property twice at
// its top level, where the payload's properties are.
func hasDuplicateKey(data []byte) bool {
	d := json.NewDecoder(bytes.NewReader(data))
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return false
	}
	seen := map[string]bool{}
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return false
		}
		k, _ := t.(string)
		if seen[k] {
			return true
		}
		seen[k] = true
		var skip json.RawMessage
		if err := d.Decode(&skip); err != nil {
			return false
		}
	}
	return false
}
