package expiryindex

import (
	"errors"
	"hash/fnv"
	"maps"
	"strconv"
	"testing"
	"time"

	"github.com/klantreis/journey/pkg/stream"
)

func TestParseKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		key  string
		want Key
		ok   bool
	}{
		{"p0.alice", Key{Partition: 0, CustomerID: "alice"}, true},
		{"p12.acme_2Enl_2F42", Key{Partition: 12, CustomerID: "acme.nl/42"}, true},
		{"p3._", Key{Partition: 3, CustomerID: ""}, true},
		{"p3.s.7", Key{Partition: 3, Shard: true}, true},
		{ShardKey(5, 63), Key{Partition: 5, Shard: true}, true},
		{CustomerKey(2, "s"), Key{Partition: 2, CustomerID: "s"}, true},
		{CustomerKey(2, "s.1"), Key{Partition: 2, CustomerID: "s.1"}, true}, // a customer named like a shard
		{"p3.s.x", Key{}, false},
		{"p3.s.-1", Key{}, false},
		{"p3.t.1", Key{}, false},
		{"p3.acme_2enl", Key{}, false}, // lower-case hex: not a key CustomerKey makes
		{"q3.alice", Key{}, false},
		{"p.alice", Key{}, false},
		{"p-1.alice", Key{}, false},
		{"alice", Key{}, false},
	} {
		got, ok := ParseKey(tc.key)
		if ok != tc.ok || got != tc.want {
			t.Errorf("ParseKey(%q) = %+v, %v; want %+v, %v", tc.key, got, ok, tc.want, tc.ok)
		}
	}
}

func TestShardRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 5, 7, 0, 0, 123, time.UTC)
	in := map[string]time.Time{"alice": at, "acme.nl/42": at.Add(time.Hour), "": at.Add(-time.Hour), "s.1": at}
	v := Encode(in)
	if string(v) != string(Encode(maps.Clone(in))) {
		t.Fatal("Encode is not deterministic")
	}
	got := map[string]time.Time{}
	if err := Decode(v, func(id string, at time.Time) { got[id] = at }); err != nil {
		t.Fatal(err)
	}
	if !maps.EqualFunc(in, got, time.Time.Equal) {
		t.Errorf("round trip: %v, want %v", got, in)
	}
	out, removed, err := Without(v, []string{"alice", "nobody"})
	if err != nil || removed != 1 {
		t.Fatalf("Without: %d removed, %v", removed, err)
	}
	delete(in, "alice")
	if string(out) != string(Encode(in)) {
		t.Errorf("Without: %q, want %q", out, Encode(in))
	}
	if same, removed, _ := Without(out, []string{"alice"}); removed != 0 || string(same) != string(out) {
		t.Errorf("Without a customer it does not hold: %d removed", removed)
	}
}

func TestDecodeRefusesMalformed(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"alice\n", "alice x\n", "acme.nl 1\n", "alice 1\nbob\n"} {
		if err := Decode([]byte(v), func(string, time.Time) {}); !errors.Is(err, ErrMalformed) {
			t.Errorf("Decode(%q) = %v, want ErrMalformed", v, err)
		}
	}
	if err := Decode(nil, func(string, time.Time) { t.Error("an entry in an empty shard") }); err != nil {
		t.Errorf("empty shard: %v", err)
	}
}

// The customers of one partition (NATS's partition(): 32-bit FNV-1a of
// the customer key modulo the partitions) spread over all the shards.
func TestShardOfSpreads(t *testing.T) {
	t.Parallel()
	counts := make([]int, 16)
	total := 0
	for i := range 64000 {
		id := "cust/" + strconv.Itoa(i)
		h := fnv.New32a()
		_, _ = h.Write([]byte(stream.CustomerKey(id)))
		if h.Sum32()%4 != 1 {
			continue
		}
		counts[ShardOf(id, 16)]++
		total++
	}
	for n, c := range counts {
		if c < total/16*8/10 || c > total/16*12/10 {
			t.Errorf("shard %d holds %d of partition 1's %d customers, want about %d", n, c, total, total/16)
		}
	}
	if ShardOf("x", 0) != 0 {
		t.Error("ShardOf with no shards")
	}
}
