package touchpoint

import (
	"strings"
	"testing"
	"time"
)

func TestJudge(t *testing.T) {
	t.Parallel()
	v := func(r uint32, c uint64) Version { return Version{Revision: r, Content: c} }
	for _, tc := range []struct {
		name     string
		stored   Version
		have     bool
		in       Version
		want     Verdict
		wantText string
	}{
		{"nothing stored", Version{}, false, v(0, 1), Store, "store"},
		{"nothing stored, a correction first", Version{}, false, v(3, 1), Store, "store"},
		{"the same event again", v(0, 1), true, v(0, 1), Duplicate, "duplicate"},
		{"same revision, other content", v(0, 1), true, v(0, 2), Conflict, "conflict"},
		{"a correction", v(0, 1), true, v(1, 2), Store, "store"},
		{"a correction of the same content", v(0, 1), true, v(1, 1), Store, "store"},
		{"the original after its correction", v(1, 2), true, v(0, 1), Stale, "stale"},
		{"the correction again", v(1, 2), true, v(1, 2), Duplicate, "duplicate"},
		{"two corrections claim revision 1", v(1, 2), true, v(1, 3), Conflict, "conflict"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Judge(tc.stored, tc.have, tc.in)
			if got != tc.want || got.String() != tc.wantText {
				t.Fatalf("Judge(%+v, %v, %+v) = %v, want %v", tc.stored, tc.have, tc.in, got, tc.want)
			}
		})
	}
}

func TestIdentityHashSeparatesTheParts(t *testing.T) {
	t.Parallel()
	if IdentityHash("a", "bc") == IdentityHash("ab", "c") {
		t.Fatal("(a, bc) and (ab, c) share a hash")
	}
	if IdentityHash("src", "1") != IdentityHash("src", "1") {
		t.Fatal("hash is not deterministic")
	}
}

func TestContentHash(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	base := Event{ID: "1", Source: "s", Type: TypeOf(KindVisit), Subject: "c1", Time: at, Data: []byte(`{"channel":"web"}`)}
	h := ContentHash(&base)
	same := base
	same.Data = []byte("{ \"channel\" : \"web\" }\n")
	same.Extensions = map[string]string{"traceparent": "00-abc", ExtRevision: "2"}
	same.DataContentType = ContentTypeJSON
	if ContentHash(&same) != h {
		t.Fatal("white space in data or extensions changed the content hash")
	}
	for name, change := range map[string]func(e *Event){
		"data":     func(e *Event) { e.Data = []byte(`{"channel":"store"}`) },
		"subject":  func(e *Event) { e.Subject = "c2" },
		"type":     func(e *Event) { e.Type = TypeOf(KindOrder) },
		"time":     func(e *Event) { e.Time = at.Add(time.Millisecond) },
		"boundary": func(e *Event) { e.Type, e.Subject = e.Type+"c", "1" },
	} {
		e := base
		change(&e)
		if ContentHash(&e) == h {
			t.Errorf("a change of %s kept the content hash", name)
		}
	}
}

func TestRevision(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ext    map[string]string
		want   uint32
		wantOK bool
	}{
		{nil, 0, true},
		{map[string]string{"revision": "0"}, 0, true},
		{map[string]string{"revision": "7"}, 7, true},
		{map[string]string{"revision": "4294967295"}, MaxRevision, true},
		{map[string]string{"revision": "4294967296"}, 0, false},
		{map[string]string{"revision": "-1"}, 0, false},
		{map[string]string{"revision": "07"}, 0, false},
		{map[string]string{"revision": "one"}, 0, false},
		{map[string]string{"revision": ""}, 0, false},
	} {
		got, ok := Revision(&Event{Extensions: tc.ext})
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("Revision(%v) = %d, %v; want %d, %v", tc.ext, got, ok, tc.want, tc.wantOK)
		}
	}
}

// The id rule, case by case as measured through the collector: what is
// refused and what the message says.
func TestIdentifiersRoundTripOrAreRefused(t *testing.T) {
	t.Parallel()
	at := time.Now().Add(-time.Hour)
	for _, tc := range []struct {
		name, subject string
		wantErr       string // "" accepted
	}{
		{"plain", "cust-1", ""},
		{"non-ASCII letters", "klant-é", ""},
		{"a space", "bad-nl x", ""},
		{"newline", "bad-nl\nx", "subject: must not contain control characters, got U+000A at byte 6"},
		{"carriage return", "a\rb", "subject: must not contain control characters, got U+000D at byte 1"},
		{"tab", "a\tb", "U+0009 at byte 1"},
		{"NUL", "a\x00b", "U+0000 at byte 1"},
		{"ESC", "a\x1bb", "U+001B at byte 1"},
		{"DEL", "a\x7fb", "U+007F at byte 1"},
		{"C1", "a\u0085b", "U+0085 at byte 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New("src", "ev-1", tc.subject, at, Visit{Common: Common{Channel: "web"}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = Validate(&e, time.Now())
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("got %v, want an error saying %q", err, tc.wantErr)
			}
		})
	}
	// id and source follow the same rule.
	e, _ := New("src\n", "ev\t1", "c", at, Visit{Common: Common{Channel: "web"}})
	_, err := Validate(&e, time.Now())
	if err == nil || !strings.Contains(err.Error(), "id: must not contain control characters") || !strings.Contains(err.Error(), "source: must not contain control characters") {
		t.Fatalf("id and source with control characters: %v", err)
	}
}

// Lone surrogate escapes decode to something else than was sent (fastjson
// keeps "\ud800" as text and turns "\ud800\u0041" into U+FFFD), so two
// distinct ids would collide: structured events and payloads with one are
// refused; pairs are characters and pass.
func TestLoneSurrogatesAreRefused(t *testing.T) {
	t.Parallel()
	ev := func(subject string) []byte {
		return []byte(`{"specversion":"1.0","id":"1","source":"s","type":"io.klantreis.touchpoint.visit.v1","subject":"` + subject + `","time":"2026-01-01T00:00:00Z","data":{"channel":"web"}}`)
	}
	for _, tc := range []struct {
		subject string
		wantErr string
	}{
		{`\ud800`, `lone UTF-16 surrogate escape encodes no character: \ud800 at byte`},
		{`\ud800\u0041`, `\ud800 at byte`},
		{`x\udc00`, `\udc00 at byte`},
		{`\uD83D`, `\uD83D at byte`},
		{`\ud83d\ude00`, ""},
		{`\u00e9\\ud800`, ""}, // an escaped backslash, then text
	} {
		e, err := UnmarshalStructured(ev(tc.subject))
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s refused: %v", tc.subject, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: got %v (subject %q), want an error saying %q", tc.subject, err, e.Subject, tc.wantErr)
		}
	}
	if _, err := DecodePayload(KindVisit, []byte(`{"channel":"web","campaign":"\udfff"}`)); err == nil || !strings.Contains(err.Error(), "lone UTF-16 surrogate") {
		t.Fatalf("payload with a lone surrogate: %v", err)
	}
}
