package touchpoint_test

import (
	"encoding/json"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/klantreis/journey/pkg/touchpoint"
)

// benchEvent is a typical B2B order: 424 bytes in structured mode.
func benchEvent() touchpoint.Event {
	e, err := touchpoint.New("webshop", "o-42-v1", "cust-123",
		time.Date(2026, 2, 27, 14, 3, 59, 123000000, time.UTC),
		touchpoint.Order{Common: touchpoint.Common{AccountID: "acct-9", DMURole: "buyer", Channel: "web"},
			OrderID: "o-42", Status: "placed", Amount: touchpoint.Amount{Cents: 1249950}, Currency: "EUR", Items: 12})
	if err != nil {
		panic(err)
	}
	e.Extensions = map[string]string{"tenant": "nl"} // one extension, as real producers add
	return e
}

// The encoding/json baseline decodes the same bytes into plain structs
// (envelope, then payload), the usual way without this package.
type jsonOrder struct {
	AccountID string  `json:"account_id"`
	ContactID string  `json:"contact_id"`
	DMURole   string  `json:"dmu_role"`
	Channel   string  `json:"channel"`
	OrderID   string  `json:"order_id"`
	Status    string  `json:"status"`
	Amount    float64 `json:"amount"`
	Currency  string  `json:"currency"`
	Items     int64   `json:"items"`
}

type jsonEnvelope struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	DataSchema      string          `json:"dataschema"`
	Tenant          string          `json:"tenant"`
	Data            json.RawMessage `json:"data"`
}

// decodeJSON is the encoding/json baseline: envelope, then payload.
func decodeJSON(structured []byte) error {
	var env jsonEnvelope
	if err := json.Unmarshal(structured, &env); err != nil {
		return err
	}
	var o jsonOrder
	return json.Unmarshal(env.Data, &o)
}

// decodeStructuredValidate is what the writer does with a structured event.
func decodeStructuredValidate(structured []byte) error {
	ev, err := touchpoint.UnmarshalStructured(structured)
	if err != nil {
		return err
	}
	_, err = touchpoint.Validate(&ev, now)
	return err
}

// decodeBinaryValidate is what the writer does with a binary-mode event.
func decodeBinaryValidate(h touchpoint.Header, data []byte) error {
	ev, err := touchpoint.FromBinary(h, data, false)
	if err != nil {
		return err
	}
	_, err = touchpoint.Validate(&ev, now)
	return err
}

func BenchmarkDecode(b *testing.B) {
	e := benchEvent()
	structured := e.MarshalStructured()
	h := touchpoint.Header{}
	e.SetBinaryHeaders(h)
	b.Logf("structured event: %d bytes, payload %d bytes", len(structured), len(e.Data))

	// Every decoder reads the same event; bytes/s count the structured form.
	for _, d := range []struct {
		name   string
		decode func() error
	}{
		{"encoding_json", func() error { return decodeJSON(structured) }},
		{"sdk_go", func() error {
			var ce cloudevents.Event
			if err := json.Unmarshal(structured, &ce); err != nil {
				return err
			}
			var o jsonOrder
			return ce.DataAs(&o)
		}},
		{"structured", func() error {
			ev, err := touchpoint.UnmarshalStructured(structured)
			if err != nil {
				return err
			}
			_, err = ev.Payload()
			return err
		}},
		{"structured_validate", func() error { return decodeStructuredValidate(structured) }},
		{"binary_validate", func() error { return decodeBinaryValidate(h, e.Data) }},
		{"binary_payload", func() error {
			ev, err := touchpoint.FromBinary(h, e.Data, false)
			if err != nil {
				return err
			}
			_, err = touchpoint.DecodePayload(touchpoint.KindOrder, ev.Data)
			return err
		}},
	} {
		b.Run(d.name, func(b *testing.B) {
			b.SetBytes(int64(len(structured)))
			b.ReportAllocs()
			for b.Loop() {
				if err := d.decode(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	e := benchEvent()
	var env jsonEnvelope
	if err := json.Unmarshal(e.MarshalStructured(), &env); err != nil {
		b.Fatal(err)
	}
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(&env); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("structured", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 1024)
		for b.Loop() {
			buf = e.AppendStructured(buf[:0])
		}
	})
	b.Run("binary_headers", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			h := make(touchpoint.Header, 10)
			e.SetBinaryHeaders(h)
		}
	})
	b.Run("new_order", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			benchEvent()
		}
	})
}

// BenchmarkDecodeInterleaved decodes the same event with encoding/json
// and with this package, alternating per op, so both see the same machine
// load (the ratio is the figure that matters on a shared machine). One op
// = the event decoded once by each; metrics are ns per event per decoder
// and the speedups over encoding/json.
func BenchmarkDecodeInterleaved(b *testing.B) {
	e := benchEvent()
	structured := e.MarshalStructured()
	h := touchpoint.Header{}
	e.SetBinaryHeaders(h)
	var tJSON, tStruct, tBinary time.Duration
	for b.Loop() {
		t0 := time.Now()
		if err := decodeJSON(structured); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := decodeStructuredValidate(structured); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if err := decodeBinaryValidate(h, e.Data); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		tJSON += t1.Sub(t0)
		tStruct += t2.Sub(t1)
		tBinary += t3.Sub(t2)
	}
	n := float64(b.N)
	b.ReportMetric(float64(tJSON.Nanoseconds())/n, "json-ns/event")
	b.ReportMetric(float64(tStruct.Nanoseconds())/n, "structured+validate-ns/event")
	b.ReportMetric(float64(tBinary.Nanoseconds())/n, "binary+validate-ns/event")
	b.ReportMetric(float64(tJSON)/float64(tStruct), "x-structured-vs-json")
	b.ReportMetric(float64(tJSON)/float64(tBinary), "x-binary-vs-json")
}

// BenchmarkEncodeInterleaved: encoding/json vs AppendStructured, alternating.
func BenchmarkEncodeInterleaved(b *testing.B) {
	e := benchEvent()
	var env jsonEnvelope
	if err := json.Unmarshal(e.MarshalStructured(), &env); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 1024)
	var tJSON, tOurs time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := json.Marshal(&env); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		buf = e.AppendStructured(buf[:0])
		t2 := time.Now()
		tJSON += t1.Sub(t0)
		tOurs += t2.Sub(t1)
	}
	n := float64(b.N)
	b.ReportMetric(float64(tJSON.Nanoseconds())/n, "json-ns/event")
	b.ReportMetric(float64(tOurs.Nanoseconds())/n, "structured-ns/event")
	b.ReportMetric(float64(tJSON)/float64(tOurs), "x-vs-json")
}

// BenchmarkContentHash is the writer's per-event fingerprint of a typical
// compact payload.
func BenchmarkContentHash(b *testing.B) {
	e := benchEvent()
	b.ReportAllocs()
	for b.Loop() {
		_ = touchpoint.ContentHash(&e)
	}
}
