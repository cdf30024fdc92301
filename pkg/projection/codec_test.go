package projection_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
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
