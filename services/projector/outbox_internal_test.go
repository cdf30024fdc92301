package projector

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/klantreis/journey/pkg/warehouse"
)

// sampleRows is a batch of 200 customers' rows the way a partition's commit
// makes them: a state each, a transition each, a survey answer for a third.
func sampleRows() rowSet {
	var set rowSet
	now := time.Date(2026, 11, 28, 16, 0, 0, 123e6, time.UTC)
	score, zero := uint8(7), uint8(0)
	for i := range 200 {
		id := fmt.Sprintf("cust/%d", i)
		set.States = append(set.States, warehouse.CustomerStateRow{CustomerID: id, Version: uint64(i) << 16, UpdatedAt: now,
			Stage: "new_customer", StageSince: now, FirstSeen: now, LastTouch: now, CountedOrders: 2, FirstVisitAt: &now,
			FirstOrderAt: &now, ExpiresAt: &now, NPSScore: &score, NPSCategory: "passive", NPSComment: "ok", Responses: 1,
			RulesVersion: "v1"})
		switch i % 4 { // a score of 0 and no score must both survive the codec
		case 1:
			set.States[i].NPSScore = &zero
		case 2:
			set.States[i].NPSScore = nil
		}
		set.Transitions = append(set.Transitions, warehouse.TransitionRow{CustomerID: id, Idx: 1, Version: 5, Valid: true,
			From: "prospect", To: "new_customer", At: now, Reason: "first_order", CauseEventIDs: []string{"12-3"}, RulesVersion: "v1"})
		if i%3 == 0 {
			set.Responses = append(set.Responses, warehouse.ResponseRow{CustomerID: id, Source: "sim", EventID: "1-2",
				SurveyID: "nps", Time: now, Score: 7, Category: "passive", Comment: "ok", Stage: "prospect", StreamSeq: 99})
		}
	}
	return set
}

func TestRowSetRoundTrip(t *testing.T) {
	want := sampleRows()
	m, err := encodeRowSet(&want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeRowSet(m.Header, m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("gob round trip changed the rows:\n got %+v\nwant %+v", got.States[0], want.States[0])
	}
}

// An outbox written by a projector from before gob holds JSON without the
// header; the loader must still read it, not drop its rows.
func TestRowSetReadsJSONOutbox(t *testing.T) {
	want := sampleRows()
	raw, err := json.Marshal(&want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeRowSet(nats.Header{}, raw)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("JSON rows read differently:\n got %+v\nwant %+v", got.States[0], want.States[0])
	}
}

func TestRowSetRejectsUnknownEncoding(t *testing.T) {
	_, err := decodeRowSet(nats.Header{encodingHeader: []string{"avro"}}, []byte("x"))
	if err == nil || !strings.Contains(err.Error(), `"avro"`) {
		t.Fatalf("err = %v, want one naming the unknown encoding", err)
	}
	_, err = decodeRowSet(nats.Header{encodingHeader: []string{"gob"}}, []byte("not gob"))
	if err == nil {
		t.Fatal("corrupt gob decoded without error")
	}
}

// BenchmarkRowSetCodec compares encoding plus decoding one outbox message
// (200 customers) with gob, what the projector uses, and encoding/json,
// what it used before; run both in one go for a same-run ratio.
func BenchmarkRowSetCodec(b *testing.B) {
	set := sampleRows()
	b.Run("gob", func(b *testing.B) {
		for b.Loop() {
			m, err := encodeRowSet(&set)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := decodeRowSet(m.Header, m.Data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		for b.Loop() {
			raw, err := json.Marshal(&set)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := decodeRowSet(nats.Header{}, raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Halving must make progress whatever the mix of rows: a half that kept
// every row would recurse forever on a set too large to send.
func TestRowSetHalves(t *testing.T) {
	all := sampleRows()
	for _, shape := range [][3]int{{2, 0, 0}, {1, 1, 0}, {0, 1, 1}, {1, 0, 1}, {1, 1, 1}, {200, 200, 67}, {0, 0, 5}, {3, 0, 0}} {
		set := rowSet{States: all.States[:shape[0]], Transitions: all.Transitions[:shape[1]], Responses: all.Responses[:shape[2]]}
		n := shape[0] + shape[1] + shape[2]
		a, b := set.halves()
		na := len(a.States) + len(a.Transitions) + len(a.Responses)
		nb := len(b.States) + len(b.Transitions) + len(b.Responses)
		if na == 0 || nb == 0 || na+nb != n {
			t.Fatalf("shape %v: halves of %d and %d rows", shape, na, nb)
		}
		joined := rowSet{States: append(append([]warehouse.CustomerStateRow{}, a.States...), b.States...),
			Transitions: append(append([]warehouse.TransitionRow{}, a.Transitions...), b.Transitions...),
			Responses:   append(append([]warehouse.ResponseRow{}, a.Responses...), b.Responses...)}
		if !reflect.DeepEqual(joined.States, set.States) || !reflect.DeepEqual(joined.Transitions, set.Transitions) || !reflect.DeepEqual(joined.Responses, set.Responses) {
			t.Fatalf("shape %v: the halves do not add up to the set", shape)
		}
	}
}
