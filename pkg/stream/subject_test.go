package stream_test

import (
	"strings"
	"testing"
	"testing/quick"
	"unicode/utf8"

	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
)

// subjectSafe: a key is one NATS subject token that needs no quoting in
// the CLI or a config file.
func subjectSafe(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func TestCustomerKeyRoundTripProperty(t *testing.T) {
	prop := func(id string) bool {
		k := stream.CustomerKey(id)
		back, ok := stream.CustomerID(k)
		return ok && back == id && subjectSafe(k)
	}
	if err := quick.Check(prop, &quick.Config{MaxCount: 3000}); err != nil {
		t.Fatal(err)
	}
	// Raw bytes, not only valid strings.
	propBytes := func(b []byte) bool { return prop(string(b)) }
	if err := quick.Check(propBytes, &quick.Config{MaxCount: 3000}); err != nil {
		t.Fatal(err)
	}
	for _, id := range append(awkwardCustomers, "", "_", "__", "_2E", "-", strings.Repeat("€", 42)) {
		if !prop(id) {
			t.Errorf("%q -> %q does not round-trip", id, stream.CustomerKey(id))
		}
	}
}

func TestCustomerKeyInjective(t *testing.T) {
	seen := map[string]string{}
	for _, id := range append(awkwardCustomers, "", "_", "_2E", "a.b", "a_2Eb", "a_b") {
		k := stream.CustomerKey(id)
		if prev, dup := seen[k]; dup {
			t.Fatalf("%q and %q share key %q", prev, id, k)
		}
		seen[k] = id
	}
	if stream.CustomerKey("acme.nl/42") != "acme_2Enl_2F42" {
		t.Fatalf("documented example changed: %s", stream.CustomerKey("acme.nl/42"))
	}
}

func TestCustomerIDRejectsBadKeys(t *testing.T) {
	// Malformed escapes, and keys CustomerKey never makes (lower-case hex,
	// escaped safe bytes, an empty key) that would alias a real one.
	for _, k := range []string{"a_", "a_2", "a_ZZ", "_G0", "a_2eb", "_61", "", "a_+1"} {
		if _, ok := stream.CustomerID(k); ok {
			t.Errorf("%q accepted", k)
		}
	}
}

func TestSubjects(t *testing.T) {
	if s := stream.PublishSubject(touchpoint.KindOrder, "a.b"); s != "touchpoint.order.a_2Eb" {
		t.Fatal(s)
	}
	if s := stream.CustomerFilter("a b"); s != "touchpoint.*.*.a_20b" {
		t.Fatal(s)
	}
	if s := stream.KindFilter(touchpoint.KindSurvey); s != "touchpoint.*.survey.*" {
		t.Fatal(s)
	}
	if s := stream.PartitionFilter(3); s != "touchpoint.3.>" {
		t.Fatal(s)
	}
	if s := stream.DerivedSubject(touchpoint.KindStageChanged, "x/y"); s != "customer.stage_changed.x_2Fy" {
		t.Fatal(s)
	}
	p, k, key, ok := stream.ParseStoredSubject("touchpoint.7.visit.acme_2Enl")
	if !ok || p != 7 || k != touchpoint.KindVisit || key != "acme_2Enl" {
		t.Fatal(p, k, key, ok)
	}
	for _, bad := range []string{"touchpoint.visit.x", "touchpoint.x.visit.c", "customer.1.visit.c", "touchpoint.1"} {
		if _, _, _, ok := stream.ParseStoredSubject(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
	// Longest customer id: the subject stays within NATS limits.
	long := strings.Repeat("€", touchpoint.MaxSubjectLen/3)
	if s := stream.PublishSubject(touchpoint.KindComplaint, long); !utf8.ValidString(s) || len(s) > 512 {
		t.Fatalf("subject of %d bytes", len(s))
	}
}
