package projector_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/projection"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
)

// deadLetters reads the dead-letter stream: class by stream sequence of
// the original event, the reasons given and the consumers named.
func deadLetters(t *testing.T, js jetstream.JetStream) (classes map[string]string, reasons, consumers []string) {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, stream.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	classes = map[string]string{}
	if info.State.Msgs == 0 {
		return classes, nil, nil
	}
	oc, err := js.OrderedConsumer(ctx, stream.DeadLetterStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for range info.State.Msgs {
		m, err := oc.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		h := m.Headers()
		classes[h.Get(stream.HeaderDeadSeq)] = h.Get(stream.HeaderDeadClass)
		reasons = append(reasons, h.Get(stream.HeaderDeadReason))
		if c := h.Get(stream.HeaderDeadConsumer); !slices.Contains(consumers, c) {
			consumers = append(consumers, c)
		}
	}
	return classes, reasons, consumers
}

// A customer whose state would outgrow what the bucket may hold must not
// hold up its partition: the events that would have grown it are
// dead-lettered with the reason, the others' are projected, and the
// customer's later events that fit are applied.
func TestStateTooLargeIsDeadLettered(t *testing.T) {
	br := freshStreams(t)
	js := br.js
	now := time.Now().UTC().Truncate(time.Second)
	var events []touchpoint.Event
	add := func(id, customer string, at time.Time, p touchpoint.Typed) {
		e, err := touchpoint.New("test-limits", id, customer, at, p)
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
	}
	const orders = 80
	for i := range orders {
		add(fmt.Sprint("big-", i), "acct/big", now.Add(time.Duration(i-orders)*time.Hour),
			touchpoint.Order{OrderID: fmt.Sprintf("order-%04d-of-a-large-account", i), Status: "placed", Amount: touchpoint.Amount{Cents: 100}, Currency: "EUR"})
	}
	for c := range 40 {
		add(fmt.Sprint("small-", c), fmt.Sprint("cust/", c), now.Add(-time.Hour),
			touchpoint.Order{OrderID: "o1", Status: "placed", Amount: touchpoint.Amount{Cents: 100}, Currency: "EUR"})
	}
	publish(t, js, events)

	cfg := br.config(warehousetest.Config(t))
	cfg.Projector.MaxStateBytes = 4000 // ~30 orders
	stop := start(t, cfg)
	waitDrained(t, js, cfg.Projector.Durable, 2*time.Minute)

	recs := kvStates(t, js, cfg.Projector.Bucket)
	for c := range 40 {
		r := recs[fmt.Sprint("cust/", c)]
		if r == nil || r.State.CountedOrders() != 1 {
			t.Fatalf("cust/%d was not projected beside the rejected customer: %+v", c, r)
		}
	}
	kept := 0
	if big := recs["acct/big"]; big != nil {
		kept = big.State.CountedOrders()
		b, err := projection.EncodeRecord(big)
		if err != nil || len(b) > cfg.Projector.MaxStateBytes {
			t.Fatalf("stored state of acct/big is %d bytes, over the limit %d (%v)", len(b), cfg.Projector.MaxStateBytes, err)
		}
	}
	classes, reasons, consumers := deadLetters(t, js)
	tooLarge := 0
	for _, c := range classes {
		if c == "state_too_large" {
			tooLarge++
		}
	}
	if tooLarge == 0 || kept+tooLarge != orders {
		t.Fatalf("acct/big: %d orders in its state + %d dead-lettered as state_too_large, want %d in all (classes %v)", kept, tooLarge, orders, classes)
	}
	if !strings.Contains(reasons[0], "JOURNEY_PROJECTOR_MAX_STATE_BYTES") || !strings.Contains(reasons[0], "acct/big") {
		t.Fatalf("dead-letter reason does not say what was wrong: %q", reasons[0])
	}
	t.Logf("acct/big: %d orders kept, %d dead-lettered", kept, tooLarge)

	// The customer is not blocked: an event that does not grow its state
	// past the limit is applied.
	stop()
	events = events[:0]
	add("big-visit", "acct/big", now, touchpoint.Visit{Common: touchpoint.Common{Channel: "web"}})
	publish(t, js, events)
	stop = start(t, cfg)
	waitDrained(t, js, cfg.Projector.Durable, 2*time.Minute)
	before := kvStates(t, js, cfg.Projector.Bucket)
	big := before["acct/big"]
	if big == nil || big.State.FirstVisit == nil || big.State.CountedOrders() != kept {
		t.Fatalf("acct/big after a visit: %+v", big)
	}

	// The documented way back (docs/configuration.md): raise the limit,
	// delete the consumer named in the dead letters, restart. The
	// projector replays that partition: the rejected orders are applied,
	// and every other customer stays as it was.
	stop()
	if len(consumers) != 1 {
		t.Fatalf("dead letters name consumers %v, want one", consumers)
	}
	if err := js.DeleteConsumer(context.Background(), stream.TouchpointStream, consumers[0]); err != nil {
		t.Fatal(err)
	}
	cfg.Projector.MaxStateBytes = 0 // the broker's limit
	start(t, cfg)
	waitDrained(t, js, cfg.Projector.Durable, 2*time.Minute)
	after := kvStates(t, js, cfg.Projector.Bucket)
	if got := after["acct/big"].State.CountedOrders(); got != orders {
		t.Fatalf("acct/big holds %d orders after the replay, want %d", got, orders)
	}
	for id, r := range before {
		if id != "acct/big" && summary(after[id].State) != summary(r.State) {
			t.Fatalf("%s changed in the replay", id)
		}
	}
}

// Survey comments may be 4096 characters: the rows of 200 customers with
// long comments are larger than one outbox message may be. They must be
// split, not retried forever.
func TestLongCommentsFitTheOutbox(t *testing.T) {
	br := freshStreams(t)
	js := br.js
	now := time.Now().UTC().Truncate(time.Second)
	comment := strings.Repeat("é", 4000) // 8000 bytes
	const customers = 1000
	var events []touchpoint.Event
	for c := range customers {
		e, err := touchpoint.New("test-limits", fmt.Sprint("s-", c), fmt.Sprint("cust/", c), now.Add(-time.Hour),
			touchpoint.Survey{SurveyID: "nps", Score: int64(c % 11), Comment: comment})
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
	}
	publish(t, js, events)
	cfg := br.config(warehousetest.Config(t))
	start(t, cfg)
	waitDrained(t, js, cfg.Projector.Durable, 2*time.Minute)
	waitWarehouse(t, js, cfg, 2*time.Minute)

	db := openDB(t, cfg.ClickHouse)
	var states, responses uint64
	if err := db.Conn.QueryRow(context.Background(),
		"SELECT count(), sum(length(nps_comment) = ?) FROM customer_state FINAL", uint64(len(comment))).Scan(&states, &responses); err != nil {
		t.Fatal(err)
	}
	if states != customers || responses != customers {
		t.Fatalf("customer_state: %d customers, %d with the whole comment; want %d", states, responses, customers)
	}
	if err := db.Conn.QueryRow(context.Background(),
		"SELECT count() FROM satisfaction_responses FINAL WHERE length(comment) = ?", uint64(len(comment))).Scan(&responses); err != nil {
		t.Fatal(err)
	}
	if responses != customers {
		t.Fatalf("satisfaction_responses: %d rows with the whole comment, want %d", responses, customers)
	}
}
