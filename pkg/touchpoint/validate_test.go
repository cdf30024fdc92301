package touchpoint_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/klantreis/journey/pkg/touchpoint"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// ev builds a valid-looking event of type typ around data; mod edits it.
func ev(typ, data string, mod ...func(*touchpoint.Event)) touchpoint.Event {
	e := touchpoint.Event{
		ID:              "e-1",
		Source:          "shop",
		Type:            typ,
		Subject:         "c-1",
		Time:            now.Add(-time.Hour),
		DataContentType: touchpoint.ContentTypeJSON,
		DataSchema:      touchpoint.SchemaURI(typ),
		Data:            []byte(data),
	}
	for _, m := range mod {
		m(&e)
	}
	return e
}

const (
	validVisit      = `{"channel":"web","url":"https://shop.example/p/1","campaign":"spring","session_id":"s-9","account_id":"acme","contact_id":"jan","dmu_role":"influencer"}`
	validQuote      = `{"quote_id":"q1","status":"sent","amount":"1999.50","currency":"EUR","channel":"email"}`
	validOrder      = `{"order_id":"o1","status":"placed","amount":19.99,"currency":"EUR","items":3,"account_id":"acme","dmu_role":"buyer"}`
	validComplaint  = `{"complaint_id":"k1","status":"opened","category":"delivery","severity":"high","text":"late"}`
	validSurvey     = `{"survey_id":"s1","score":9,"comment":"faster delivery","contact_id":"piet","dmu_role":"decision_maker"}`
	validOffboarded = `{"reason":"moved abroad","account_id":"acme"}`
)

func rep(s string, n int) string { return strings.Repeat(s, n) }

type vcase struct {
	name  string
	e     touchpoint.Event
	field string // "" = valid
	rule  string
}

func validateCases() []vcase {
	v, q, o, c, s, off := touchpoint.TypeVisit, touchpoint.TypeQuote, touchpoint.TypeOrder, touchpoint.TypeComplaint, touchpoint.TypeSurvey, touchpoint.TypeOffboarded
	return []vcase{
		// Valid examples of every kind, with every property they admit.
		{"visit valid", ev(v, validVisit), "", ""},
		{"visit minimal", ev(v, `{"channel":"store"}`), "", ""},
		{"quote valid", ev(q, validQuote), "", ""},
		{"quote amount number 0.07", ev(q, `{"quote_id":"q","status":"requested","amount":0.07,"currency":"USD"}`), "", ""},
		{"quote amount number 1.1", ev(q, `{"quote_id":"q","status":"accepted","amount":1.1,"currency":"USD"}`), "", ""},
		{"quote amount exponent", ev(q, `{"quote_id":"q","status":"rejected","amount":1e2,"currency":"USD"}`), "", ""},
		{"quote amount trailing zero", ev(q, `{"quote_id":"q","status":"expired","amount":19.990,"currency":"USD"}`), "", ""},
		{"quote amount zero string", ev(q, `{"quote_id":"q","status":"sent","amount":"0","currency":"USD"}`), "", ""},
		{"quote amount max", ev(q, `{"quote_id":"q","status":"sent","amount":999999999999999.99,"currency":"USD"}`), "", ""},
		{"order valid", ev(o, validOrder), "", ""},
		{"order cancelled", ev(o, `{"order_id":"o","status":"cancelled","amount":"0.5","currency":"EUR"}`), "", ""},
		{"order items 3.0", ev(o, `{"order_id":"o","status":"placed","amount":1,"currency":"EUR","items":3.0}`), "", ""},
		{"complaint valid", ev(c, validComplaint), "", ""},
		{"complaint resolved", ev(c, `{"complaint_id":"k","status":"resolved","category":"`+rep("é", 64)+`"}`), "", ""},
		{"survey valid", ev(s, validSurvey), "", ""},
		{"survey score 0", ev(s, `{"survey_id":"s","score":0}`), "", ""},
		{"survey score 10", ev(s, `{"survey_id":"s","score":10}`), "", ""},
		{"offboarded valid", ev(off, validOffboarded), "", ""},
		{"offboarded empty", ev(off, `{}`), "", ""},
		{"content type with charset", ev(v, validVisit, func(e *touchpoint.Event) { e.DataContentType = "application/json; charset=utf-8" }), "", ""},
		{"no content type, no schema", ev(v, validVisit, func(e *touchpoint.Event) { e.DataContentType, e.DataSchema = "", "" }), "", ""},
		{"extension", ev(v, validVisit, func(e *touchpoint.Event) {
			e.Extensions = map[string]string{"traceparent": "00-abc", "partitionkey": "x"}
		}), "", ""},
		{"time exactly 7 days ahead", ev(v, validVisit, func(e *touchpoint.Event) { e.Time = now.Add(touchpoint.MaxFuture) }), "", ""},
		{"subject 128 bytes", ev(v, validVisit, func(e *touchpoint.Event) { e.Subject = rep("x", 128) }), "", ""},

		// Context attributes.
		{"id required", ev(v, validVisit, func(e *touchpoint.Event) { e.ID = "" }), "id", "required"},
		{"id too long", ev(v, validVisit, func(e *touchpoint.Event) { e.ID = rep("i", touchpoint.MaxIDLen+1) }), "id", "maxLength"},
		{"id bad utf8", ev(v, validVisit, func(e *touchpoint.Event) { e.ID = "a\xffb" }), "id", "utf8"},
		{"source required", ev(v, validVisit, func(e *touchpoint.Event) { e.Source = "" }), "source", "required"},
		{"source too long", ev(v, validVisit, func(e *touchpoint.Event) { e.Source = rep("s", touchpoint.MaxSourceLen+1) }), "source", "maxLength"},
		{"subject required", ev(v, validVisit, func(e *touchpoint.Event) { e.Subject = "" }), "subject", "required"},
		{"subject 129 bytes", ev(v, validVisit, func(e *touchpoint.Event) { e.Subject = rep("x", 129) }), "subject", "maxLength"},
		{"subject multibyte over 128 bytes", ev(v, validVisit, func(e *touchpoint.Event) { e.Subject = rep("€", 43) }), "subject", "maxLength"},
		{"subject bad utf8", ev(v, validVisit, func(e *touchpoint.Event) { e.Subject = "\xc3" }), "subject", "utf8"},
		{"time required", ev(v, validVisit, func(e *touchpoint.Event) { e.Time = time.Time{} }), "time", "required"},
		{"time over 7 days ahead", ev(v, validVisit, func(e *touchpoint.Event) { e.Time = now.Add(touchpoint.MaxFuture + time.Second) }), "time", "maximum"},
		{"time next month", ev(v, validVisit, func(e *touchpoint.Event) { e.Time = now.AddDate(0, 1, 0) }), "time", "maximum"},
		{"time before 1970", ev(v, validVisit, func(e *touchpoint.Event) { e.Time = time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC) }), "time", "minimum"},
		{"content type text", ev(v, validVisit, func(e *touchpoint.Event) { e.DataContentType = "text/plain" }), "datacontenttype", "enum"},
		{"dataschema of another type", ev(v, validVisit, func(e *touchpoint.Event) { e.DataSchema = touchpoint.SchemaURI(o) }), "dataschema", "const"},
		{"extension reserved name", ev(v, validVisit, func(e *touchpoint.Event) { e.Extensions = map[string]string{"subject": "x"} }), "subject", "reserved"},
		{"extension bad name", ev(v, validVisit, func(e *touchpoint.Event) { e.Extensions = map[string]string{"Trace-Id": "x"} }), `"Trace-Id"`, "name"},
		{"extension too long", ev(v, validVisit, func(e *touchpoint.Event) { e.Extensions = map[string]string{"big": rep("x", touchpoint.MaxExtLen+1)} }), "big", "maxLength"},

		// Data shape.
		{"data array", ev(v, `["web"]`), "data", "type"},
		{"data string", ev(v, `"web"`), "data", "type"},

		// Common properties.
		{"account_id empty", ev(s, `{"survey_id":"s","score":1,"account_id":""}`), "data.account_id", "minLength"},
		{"contact_id too long", ev(s, `{"survey_id":"s","score":1,"contact_id":"`+rep("c", 129)+`"}`), "data.contact_id", "maxLength"},
		{"dmu_role bad", ev(o, `{"order_id":"o","status":"placed","amount":1,"currency":"EUR","dmu_role":"ceo"}`), "data.dmu_role", "enum"},
		{"account_id number", ev(v, `{"channel":"web","account_id":42}`), "data.account_id", "type"},
		{"channel on quote bad", ev(q, `{"quote_id":"q","status":"sent","amount":1,"currency":"EUR","channel":"fax"}`), "data.channel", "enum"},

		// visit
		{"visit channel required", ev(v, `{"url":"https://x"}`), "data.channel", "required"},
		{"visit channel bad", ev(v, `{"channel":"fax"}`), "data.channel", "enum"},
		{"visit url too long", ev(v, `{"channel":"web","url":"`+rep("u", 2049)+`"}`), "data.url", "maxLength"},
		{"visit campaign too long", ev(v, `{"channel":"web","campaign":"`+rep("c", 129)+`"}`), "data.campaign", "maxLength"},
		{"visit session_id too long", ev(v, `{"channel":"web","session_id":"`+rep("s", 129)+`"}`), "data.session_id", "maxLength"},
		{"visit unknown property", ev(v, `{"channel":"web","utm":"x"}`), "data.utm", "unknown"},
		{"visit property of another kind", ev(v, `{"channel":"web","score":3}`), "data.score", "unknown"},

		// quote
		{"quote quote_id required", ev(q, `{"status":"sent","amount":1,"currency":"EUR"}`), "data.quote_id", "required"},
		{"quote status required", ev(q, `{"quote_id":"q","amount":1,"currency":"EUR"}`), "data.status", "required"},
		{"quote amount required", ev(q, `{"quote_id":"q","status":"sent","currency":"EUR"}`), "data.amount", "required"},
		{"quote currency required", ev(q, `{"quote_id":"q","status":"sent","amount":1}`), "data.currency", "required"},
		{"quote status bad", ev(q, `{"quote_id":"q","status":"won","amount":1,"currency":"EUR"}`), "data.status", "enum"},
		{"quote status of order", ev(q, `{"quote_id":"q","status":"placed","amount":1,"currency":"EUR"}`), "data.status", "enum"},
		{"quote quote_id empty", ev(q, `{"quote_id":"","status":"sent","amount":1,"currency":"EUR"}`), "data.quote_id", "minLength"},
		{"quote quote_id too long", ev(q, `{"quote_id":"`+rep("q", 129)+`","status":"sent","amount":1,"currency":"EUR"}`), "data.quote_id", "maxLength"},
		{"quote amount negative", ev(q, `{"quote_id":"q","status":"sent","amount":-5,"currency":"EUR"}`), "data.amount", "minimum"},
		{"quote amount 3 decimals number", ev(q, `{"quote_id":"q","status":"sent","amount":1.005,"currency":"EUR"}`), "data.amount", "multipleOf"},
		{"quote amount 3 decimals string", ev(q, `{"quote_id":"q","status":"sent","amount":"1.234","currency":"EUR"}`), "data.amount", "format"},
		{"quote amount string with sign", ev(q, `{"quote_id":"q","status":"sent","amount":"-1","currency":"EUR"}`), "data.amount", "format"},
		{"quote amount string leading zero", ev(q, `{"quote_id":"q","status":"sent","amount":"01","currency":"EUR"}`), "data.amount", "format"},
		{"quote amount over max", ev(q, `{"quote_id":"q","status":"sent","amount":1e15,"currency":"EUR"}`), "data.amount", "maximum"},
		{"quote amount bool", ev(q, `{"quote_id":"q","status":"sent","amount":true,"currency":"EUR"}`), "data.amount", "type"},
		{"quote currency lower", ev(q, `{"quote_id":"q","status":"sent","amount":1,"currency":"eur"}`), "data.currency", "pattern"},
		{"quote currency 4 letters", ev(q, `{"quote_id":"q","status":"sent","amount":1,"currency":"EURO"}`), "data.currency", "pattern"},

		// order
		{"order order_id required", ev(o, `{"status":"placed","amount":10,"currency":"EUR"}`), "data.order_id", "required"},
		{"order status bad", ev(o, `{"order_id":"o","status":"accepted","amount":10,"currency":"EUR"}`), "data.status", "enum"},
		{"order items 0", ev(o, `{"order_id":"o","status":"placed","amount":10,"currency":"EUR","items":0}`), "data.items", "minimum"},
		{"order items over max", ev(o, `{"order_id":"o","status":"placed","amount":10,"currency":"EUR","items":1000001}`), "data.items", "maximum"},
		{"order items huge", ev(o, `{"order_id":"o","status":"placed","amount":10,"currency":"EUR","items":1e300}`), "data.items", "maximum"},
		{"order items fraction", ev(o, `{"order_id":"o","status":"placed","amount":10,"currency":"EUR","items":2.5}`), "data.items", "type"},
		{"order items string", ev(o, `{"order_id":"o","status":"placed","amount":10,"currency":"EUR","items":"2"}`), "data.items", "type"},

		// complaint
		{"complaint category required", ev(c, `{"complaint_id":"k","status":"opened"}`), "data.category", "required"},
		{"complaint complaint_id required", ev(c, `{"status":"opened","category":"x"}`), "data.complaint_id", "required"},
		{"complaint status bad", ev(c, `{"complaint_id":"k","status":"closed","category":"x"}`), "data.status", "enum"},
		{"complaint category empty", ev(c, `{"complaint_id":"k","status":"opened","category":""}`), "data.category", "minLength"},
		{"complaint category 65 chars", ev(c, `{"complaint_id":"k","status":"opened","category":"`+rep("é", 65)+`"}`), "data.category", "maxLength"},
		{"complaint severity bad", ev(c, `{"complaint_id":"k","status":"opened","category":"x","severity":"urgent"}`), "data.severity", "enum"},
		{"complaint text too long", ev(c, `{"complaint_id":"k","status":"opened","category":"x","text":"`+rep("t", 4097)+`"}`), "data.text", "maxLength"},

		// survey
		{"survey score required", ev(s, `{"survey_id":"s"}`), "data.score", "required"},
		{"survey survey_id required", ev(s, `{"score":5}`), "data.survey_id", "required"},
		{"survey score 11", ev(s, `{"survey_id":"s","score":11}`), "data.score", "maximum"},
		{"survey score -1", ev(s, `{"survey_id":"s","score":-1}`), "data.score", "minimum"},
		{"survey score fraction", ev(s, `{"survey_id":"s","score":7.5}`), "data.score", "type"},
		{"survey score string", ev(s, `{"survey_id":"s","score":"9"}`), "data.score", "type"},
		{"survey score null", ev(s, `{"survey_id":"s","score":null}`), "data.score", "type"},
		{"survey comment too long", ev(s, `{"survey_id":"s","score":1,"comment":"`+rep("c", 4097)+`"}`), "data.comment", "maxLength"},

		// offboarded
		{"offboarded reason too long", ev(off, `{"reason":"`+rep("r", 257)+`"}`), "data.reason", "maxLength"},
		{"offboarded unknown property", ev(off, `{"why":"x"}`), "data.why", "unknown"},
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range validateCases() {
		t.Run(tc.name, func(t *testing.T) {
			p, err := touchpoint.Validate(&tc.e, now)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				if k := tc.e.Kind(); k == touchpoint.KindSurvey && !p.Has(touchpoint.FScore) {
					t.Fatalf("survey payload lost its score: %+v", p)
				}
				return
			}
			assertFieldError(t, err, tc.field, tc.rule)
		})
	}
}

func assertFieldError(t *testing.T, err error, field, rule string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s/%s, got valid", field, rule)
	}
	if !errors.Is(err, touchpoint.ErrInvalid) {
		t.Fatalf("error does not wrap ErrInvalid: %v", err)
	}
	var ve *touchpoint.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("not a *ValidationError: %T %v", err, err)
	}
	for _, fe := range ve.Errors {
		if fe.Field == field && fe.Rule == rule {
			if !strings.Contains(err.Error(), field) {
				t.Fatalf("message does not name the field %s: %v", field, err)
			}
			return
		}
	}
	t.Fatalf("want %s/%s, got %+v", field, rule, ve.Errors)
}

// TestValidateAgreesWithSchemas runs the payload cases through the JSON
// Schemas too: Validate mirrors them, so both must accept and reject the
// same data.
func TestValidateAgreesWithSchemas(t *testing.T) {
	t.Parallel()
	set, err := touchpoint.Schemas()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range validateCases() {
		if tc.field != "" && tc.field != "data" && !strings.HasPrefix(tc.field, "data.") {
			continue // context attributes are not the data schema's business
		}
		t.Run(tc.name, func(t *testing.T) {
			serr := set.ValidateData(tc.e.Type, tc.e.Data)
			if (serr == nil) != (tc.field == "") {
				t.Fatalf("schema verdict %v, Validate expects field %q", serr, tc.field)
			}
		})
	}
}

// TestAmountAgreesWithSchema checks the exact decimal arithmetic of amounts
// against the schema's (multipleOf 0.01, a rational in the validator),
// where binary floating point would call 0.07 or 19.99 not a multiple.
func TestAmountAgreesWithSchema(t *testing.T) {
	t.Parallel()
	set, err := touchpoint.Schemas()
	if err != nil {
		t.Fatal(err)
	}
	cents := map[string]int64{
		"0.07": 7, "1.1": 110, "19.99": 1999, "0.29": 29, "4.35": 435, "1.15": 115, "0.1e1": 100,
		"1e2": 10000, "19.990": 1999, "-0": 0, "0": 0, "0.0": 0, "1E-2": 1, "123456789012345.99": 12345678901234599,
		"9999999.99": 999999999, "100": 10000, "0.01": 1, "2.50": 250, "5e-1": 50,
		`"0.07"`: 7, `"19.99"`: 1999, `"1.1"`: 110, `"0"`: 0, `"999999999999999.99"`: 99999999999999999,
	}
	invalid := []string{"1.005", "0.001", "-1", "-0.01", "1e15", "1234567890123456", "1e-3", "19.991",
		"0.30000000000000004", `"1.234"`, `"-1"`, `"01"`, `"1e2"`, `"1."`, `".5"`, `""`, `" 1"`, `"1234567890123456"`}
	check := func(lit string, want bool) {
		data := []byte(`{"quote_id":"q","status":"sent","currency":"EUR","amount":` + lit + `}`)
		serr := set.ValidateData(touchpoint.TypeQuote, data)
		e := ev(touchpoint.TypeQuote, string(data))
		p, verr := touchpoint.Validate(&e, now)
		if (serr == nil) != want || (verr == nil) != want {
			t.Errorf("amount %s: want valid=%v, schema says %v, Validate says %v", lit, want, serr, verr)
			return
		}
		if want && p.Amount.Cents != cents[lit] {
			t.Errorf("amount %s: got %d cents, want %d", lit, p.Amount.Cents, cents[lit])
		}
	}
	for lit := range cents {
		check(lit, true)
	}
	for _, lit := range invalid {
		check(lit, false)
	}
	// Every cent from 0.00 to 99.99 as a JSON number: floats must not leak in.
	for c := 0; c < 10000; c++ {
		lit := touchpoint.Amount{Cents: int64(c)}.String()
		data := []byte(`{"quote_id":"q","status":"sent","currency":"EUR","amount":` + lit + `}`)
		p, err := touchpoint.DecodePayload(touchpoint.KindQuote, data)
		if err != nil || p.Amount.Cents != int64(c) {
			t.Fatalf("amount %s: got %d, %v", lit, p.Amount.Cents, err)
		}
	}
}

func TestValidateUnknownType(t *testing.T) {
	t.Parallel()
	e := ev("com.example.click.v1", `{}`)
	_, err := touchpoint.Validate(&e, now)
	if !errors.Is(err, touchpoint.ErrUnknownType) {
		t.Fatalf("want ErrUnknownType, got %v", err)
	}
	if errors.Is(err, touchpoint.ErrInvalid) {
		t.Fatalf("unknown type must not also be ErrInvalid: %v", err)
	}
	var ve *touchpoint.ValidationError
	if !errors.As(err, &ve) || ve.First().Field != "type" {
		t.Fatalf("want a field error on type, got %v", err)
	}
	// A version we do not know is an unknown type too.
	e = ev("io.klantreis.touchpoint.order.v2", validOrder)
	if _, err := touchpoint.Validate(&e, now); !errors.Is(err, touchpoint.ErrUnknownType) {
		t.Fatalf("v2: want ErrUnknownType, got %v", err)
	}
	e = ev("", validOrder)
	_, err = touchpoint.Validate(&e, now)
	assertFieldError(t, err, "type", "required")
}

func TestValidateRejectsDerivedTypes(t *testing.T) {
	t.Parallel()
	for _, typ := range []string{touchpoint.TypeStageChanged, touchpoint.TypeSatisfactionChanged, touchpoint.TypeAtRisk} {
		t.Run(typ, func(t *testing.T) {
			if touchpoint.IsFact(typ) {
				t.Fatal("a derived type counts as a fact")
			}
			e := ev(typ, `{"rules_version":"1"}`)
			_, err := touchpoint.Validate(&e, now)
			assertFieldError(t, err, "type", "enum")
		})
	}
}

func TestValidateMalformedData(t *testing.T) {
	t.Parallel()
	for _, data := range []string{``, `{`, `{"channel":"web"`, `nope`} {
		e := ev(touchpoint.TypeVisit, data)
		_, err := touchpoint.Validate(&e, now)
		if !errors.Is(err, touchpoint.ErrMalformed) {
			t.Errorf("data %q: want ErrMalformed, got %v", data, err)
		}
	}
}

// TestValidateRefusesDuplicateProperties: the JSON Schema reader keeps the
// last of two values and ClickHouse's visitParam functions the first, so a
// payload naming a property twice would be stored as one thing and
// projected as another. It is refused, naming the property.
func TestValidateRefusesDuplicateProperties(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ typ, data, field string }{
		{touchpoint.TypeVisit, `{"channel":"web","channel":"fax"}`, "data.channel"},
		{touchpoint.TypeOrder, `{"order_id":"o","status":"placed","amount":1,"currency":"EUR","account_id":0,"account_id":"0"}`, "data.account_id"},
		{touchpoint.TypeSurvey, `{"survey_id":"s","score":9,"score":1}`, "data.score"},
	} {
		e := ev(tc.typ, tc.data)
		_, err := touchpoint.Validate(&e, now)
		assertFieldError(t, err, tc.field, "duplicate")
	}
}

func TestValidateReportsEveryError(t *testing.T) {
	t.Parallel()
	e := ev(touchpoint.TypeOrder, `{"status":"won","amount":-1,"currency":"eur","items":0}`, func(e *touchpoint.Event) {
		e.Subject = ""
		e.Time = now.AddDate(1, 0, 0)
	})
	_, err := touchpoint.Validate(&e, now)
	for _, want := range [][2]string{
		{"subject", "required"}, {"time", "maximum"}, {"data.order_id", "required"}, {"data.status", "enum"},
		{"data.amount", "minimum"}, {"data.currency", "pattern"}, {"data.items", "minimum"},
	} {
		assertFieldError(t, err, want[0], want[1])
	}
}

func TestNewBuildsValidEvents(t *testing.T) {
	t.Parallel()
	at := now.Add(-time.Minute)
	common := touchpoint.Common{AccountID: "acme", ContactID: "jan", DMURole: "buyer", Channel: "web"}
	payloads := []touchpoint.Typed{
		touchpoint.Visit{Common: common, URL: "https://x", Campaign: "c", SessionID: "s"},
		touchpoint.Quote{Common: common, QuoteID: "q", Status: "sent", Amount: touchpoint.Amount{Cents: 1999}, Currency: "EUR"},
		touchpoint.Order{Common: common, OrderID: "o", Status: touchpoint.StatusPlaced, Amount: touchpoint.Amount{Cents: 7}, Currency: "EUR", Items: 2},
		touchpoint.Complaint{Common: common, ComplaintID: "k", Status: touchpoint.StatusOpened, Category: "delivery", Severity: "low", Text: "late"},
		touchpoint.Survey{Common: common, SurveyID: "s", Score: 0, Comment: "ok"},
		touchpoint.Offboarded{Common: common, Reason: "moved"},
	}
	for _, pl := range payloads {
		e, err := touchpoint.New("crm", "id-"+string(pl.Kind()), "cust/1", at, pl)
		if err != nil {
			t.Fatal(err)
		}
		p, err := touchpoint.Validate(&e, now)
		if err != nil {
			t.Fatalf("%s: %v (data %s)", pl.Kind(), err, e.Data)
		}
		if e.Kind() != pl.Kind() || e.DataSchema != touchpoint.SchemaURI(e.Type) || !e.Time.Equal(at) {
			t.Fatalf("%s: attributes %+v", pl.Kind(), e)
		}
		if p.AccountID != "acme" || p.DMURole != "buyer" {
			t.Fatalf("%s: common lost: %+v", pl.Kind(), p)
		}
		switch pl := pl.(type) {
		case touchpoint.Quote:
			if p.Amount != pl.Amount {
				t.Fatalf("amount %v != %v", p.Amount, pl.Amount)
			}
		case touchpoint.Order:
			if p.Amount != pl.Amount || p.Items != 2 {
				t.Fatalf("order %+v", p)
			}
		case touchpoint.Survey:
			if !p.Has(touchpoint.FScore) || p.Score != 0 {
				t.Fatalf("score 0 lost: %+v", p)
			}
		}
	}
}
