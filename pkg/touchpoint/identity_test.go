package touchpoint

import (
	"testing"
	"time"
)

func TestJudge(t *testing.T) {
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
	if IdentityHash("a", "bc") == IdentityHash("ab", "c") {
		t.Fatal("(a, bc) and (ab, c) share a hash")
	}
	if IdentityHash("src", "1") != IdentityHash("src", "1") {
		t.Fatal("hash is not deterministic")
	}
}

func TestContentHash(t *testing.T) {
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
