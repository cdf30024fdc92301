package projection_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/projection"
)

// bigRecord is a customer with n placed orders: an account that buys
// daily for years.
func bigRecord(n int) *projection.Record {
	s := journey.NewState("acct/1")
	s.Orders = map[string]*journey.OrderFacts{}
	at := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		m := journey.Mark{At: at.Add(time.Duration(i) * time.Hour), Seq: uint64(1000 + i), ID: fmt.Sprintf("%08x-4b1e-4c5a-9a7e-%012x", i, i)}
		s.Orders[fmt.Sprint("ord-", i)] = &journey.OrderFacts{Placed: &m}
	}
	return &projection.Record{State: s, LastSeq: uint64(1000 + n)}
}

func TestRecordCodec(t *testing.T) {
	t.Parallel()
	small := bigRecord(3)
	b, err := projection.EncodeRecord(small)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != '{' {
		t.Fatalf("a small record must stay readable JSON, starts with %q", b[0])
	}
	// Plain JSON as older projectors wrote it.
	legacy, _ := json.Marshal(small)
	for name, in := range map[string][]byte{"encoded": b, "legacy JSON": legacy} {
		got, err := projection.DecodeRecord(in)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, small) {
			t.Fatalf("%s: round trip changed the record", name)
		}
	}

	big := bigRecord(2000)
	raw, _ := json.Marshal(big)
	b, err = projection.EncodeRecord(big)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != 0x01 {
		t.Fatalf("a %d-byte record must be compressed, starts with %q", len(raw), b[0])
	}
	if len(b) >= len(raw)/2 {
		t.Fatalf("compressed %d bytes to %d: less than half expected", len(raw), len(b))
	}
	t.Logf("%d orders: JSON %d bytes, stored %d bytes", len(big.State.Orders), len(raw), len(b))
	got, err := projection.DecodeRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, big) {
		t.Fatal("round trip changed the compressed record")
	}
	j, err := projection.RecordJSON(b)
	if err != nil || !bytes.Equal(j, raw) {
		t.Fatalf("RecordJSON: %v", err)
	}

	for name, in := range map[string][]byte{
		"empty":            {},
		"unknown encoding": []byte("\x02abc"),
		"corrupt block":    append([]byte{0x01}, bytes.Repeat([]byte{0xff}, 16)...),
		"not JSON":         []byte("{not json"),
	} {
		if _, err := projection.DecodeRecord(in); err == nil {
			t.Errorf("%s: decoded without an error", name)
		}
	}
}

// TestSizeBoundCoversEveryField pins the fields SizeBound counts: a field
// added to one of these types must be counted there too, or a record
// could pass the bound and still be refused after the batch's side writes.
func TestSizeBoundCoversEveryField(t *testing.T) {
	t.Parallel()
	counted := map[reflect.Type][]string{
		reflect.TypeFor[projection.Record]():      {"State", "LastSeq", "Bump"},
		reflect.TypeFor[journey.State]():          {"CustomerID", "AccountID", "AccountMark", "FirstTouch", "LastTouch", "FirstVisit", "FirstQuote", "Orders", "Complaints", "Offboards", "Survey", "Responses", "Revisions", "Consent", "History", "Fold", "Expires"},
		reflect.TypeFor[journey.ConsentFact]():    {"Mark", "Granted"},
		reflect.TypeFor[journey.Mark]():           {"At", "Seq", "ID"},
		reflect.TypeFor[journey.OrderFacts]():     {"Placed", "Cancelled"},
		reflect.TypeFor[journey.ComplaintFacts](): {"Opened", "Resolved"},
		reflect.TypeFor[journey.Answer]():         {"Mark", "Score", "Comment", "ContactID"},
		reflect.TypeFor[journey.Transition]():     {"From", "To", "At", "Reason", "Causes", "RulesVersion"},
		reflect.TypeFor[journey.Fold]():           {"Last", "Stage", "PeriodStart", "LastCounted", "Offboarded", "Len"},
	}
	for typ, want := range counted {
		var got []string
		for f := range typ.Fields() {
			got = append(got, f.Name)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s has fields %v; SizeBound counts %v: update SizeBound and this list", typ, got, want)
		}
	}
}

// SizeBound must never be below the real length, whatever the strings
// hold (characters JSON escapes six bytes wide included). Each record has
// one part much larger than the rest, so that a part SizeBound forgot
// would show.
func TestSizeBoundIsAnUpperBound(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(7, 8))
	str := func() string {
		b := make([]byte, 8+r.IntN(40))
		for i := range b {
			b[i] = 0x01 + byte(r.IntN(7)) // escaped as \u00XX: six bytes each
		}
		return string(b)
	}
	at := time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.FixedZone("x", 5400))
	mark := func() *journey.Mark { return &journey.Mark{At: at, Seq: r.Uint64(), ID: str()} }
	const parts = 7
	for i := range 20 * parts {
		big := i % parts
		n := func(p int) int {
			if p == big {
				return 300
			}
			return r.IntN(2)
		}
		s := journey.NewState(str())
		s.AccountID, s.AccountMark, s.FirstTouch, s.FirstVisit, s.FirstQuote = str(), mark(), mark(), mark(), mark()
		s.LastTouch, s.Expires = at, at
		s.Orders, s.Complaints, s.Offboards, s.Responses = map[string]*journey.OrderFacts{}, map[string]*journey.ComplaintFacts{}, map[string]journey.Mark{}, map[string]struct{}{}
		for range n(0) {
			s.Orders[str()] = &journey.OrderFacts{Placed: mark(), Cancelled: mark()}
		}
		for range n(1) {
			s.Complaints[str()] = &journey.ComplaintFacts{Opened: mark(), Resolved: mark()}
		}
		for range n(2) {
			s.Offboards[str()] = *mark()
		}
		for range n(3) {
			s.Responses[str()] = struct{}{}
		}
		for range n(4) {
			s.History = append(s.History, journey.Transition{From: journey.Stage(str()), To: journey.Stage(str()), At: at,
				Reason: journey.Reason(str()), Causes: []string{str(), str()}, RulesVersion: str()})
		}
		s.Survey = &journey.Answer{Mark: *mark(), Score: -r.IntN(11), Comment: str(), ContactID: str()}
		if big == 5 {
			s.Survey.Comment = strings.Repeat(str(), 100)
		}
		s.Fold = journey.Fold{Last: *mark(), Stage: journey.Stage(str()), PeriodStart: mark(), LastCounted: mark(), Offboarded: mark(), Len: r.IntN(1000)}
		if big == 6 {
			s.CustomerID = strings.Repeat(str(), 100)
		}
		rec := &projection.Record{State: s, LastSeq: r.Uint64(), Bump: r.Uint32()}
		raw, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		if b := projection.SizeBound(rec); b < len(raw) {
			t.Fatalf("record %d (large part %d): bound %d below its %d bytes of JSON", i, big, b, len(raw))
		}
	}
	// On a real customer it stays within a small factor of the truth, so
	// that only records near the limit pay for an early encoding.
	big := bigRecord(2000)
	raw, _ := json.Marshal(big)
	b := projection.SizeBound(big)
	if b < len(raw) || b > 6*len(raw) {
		t.Fatalf("bound %d for %d bytes of JSON", b, len(raw))
	}
	t.Logf("2000 orders: bound %d for %d bytes of JSON", b, len(raw))
}
