package journeyctl_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/services/journeyctl"
	"github.com/klantreis/journey/services/projector"
	"github.com/klantreis/journey/services/writer"
)

// runServices runs a writer and a projector in this process until the test ends.
func (e *env) runServices() {
	e.t.Helper()
	wc, pc := e.writerConfig(), e.projectorConfig()
	wc.Writer.Addr, wc.Writer.BatchAge = "127.0.0.1:0", 50*time.Millisecond
	pc.Projector.Addr, pc.Projector.WarehouseWait = "127.0.0.1:0", 100*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	log := quiet()
	go func() { done <- writer.Run(ctx, wc, log) }()
	go func() { done <- projector.Run(ctx, pc, log) }()
	e.t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				e.t.Errorf("service: %v", err)
			}
		}
	})
}

func (e *env) msgs(streamName, filter string) uint64 {
	e.t.Helper()
	s, err := e.js.Stream(context.Background(), streamName)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(filter))
	if err != nil {
		e.t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

// An order with an invalid currency is dead-lettered by the writer and the
// projector; redriven with a fixed body it lands as one row in events and
// one stage change in the projector, the dead letters are marked and gone,
// and the action is audited on OPS and in ops_audit.
func TestRedriveAFixedDeadLetterLandsOnce(t *testing.T) {
	t.Parallel() // its own NATS server and database
	e := newEnv(t)
	e.runServices()
	good, err := touchpoint.New("test-shop", "order-1", "cust-redrive", time.Now().Add(-time.Hour),
		touchpoint.Order{OrderID: "O1", Status: "placed", Amount: touchpoint.Amount{Cents: 1250}, Currency: "EUR", Items: 1})
	if err != nil {
		t.Fatal(err)
	}
	fixed := string(good.Data)
	bad := good
	bad.Data = []byte(strings.Replace(fixed, `"EUR"`, `"EURO"`, 1))
	m, err := stream.NewFactMsg(&bad)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the writer and the projector to dead-letter it", func() bool {
		return e.msgs(stream.DeadLetterStream, "deadletter.>") >= 2
	})

	code, out, _ := e.run("deadletters", "list", "--json")
	if code != 0 {
		t.Fatalf("list: exit %d", code)
	}
	var list struct {
		DeadLetters []journeyctl.DeadLetterView `json:"dead_letters"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	var writerSeq uint64
	var seqs []string
	for _, v := range list.DeadLetters {
		if v.ID != "order-1" || v.Reason == "" || v.Class == "" {
			t.Errorf("dead letter %+v: want id order-1 with a class and a reason", v)
		}
		if v.Consumer == "writer" {
			writerSeq = v.Seq
		}
		seqs = append(seqs, strconv.FormatUint(v.Seq, 10))
	}
	if writerSeq == 0 {
		t.Fatalf("no writer dead letter in %+v", list.DeadLetters)
	}

	// Redriving as it is fails validation again: exit 3, nothing changes.
	if code, _, _ := e.run("deadletters", "redrive", strconv.FormatUint(writerSeq, 10)); code != journeyctl.ExitVerify {
		t.Fatalf("redrive of a still-invalid dead letter: exit %d, want %d", code, journeyctl.ExitVerify)
	}
	// Fixed: every dead letter of the event, with one fixed body each.
	for _, s := range seqs {
		if code, _, _ := e.run("deadletters", "redrive", "--body-file", writeFile(t, "fixed.json", fixed), s); code != 0 {
			t.Fatalf("redrive %s: exit %d", s, code)
		}
	}
	key := stream.CustomerKey("cust-redrive")
	waitFor(t, time.Minute, "the row and the stage change", func() bool {
		return e.count("SELECT count() FROM events WHERE source = 'test-shop' AND id = 'order-1'") >= 1 &&
			e.msgs(stream.DerivedStream, "customer.stage_changed."+key) >= 1
	})
	time.Sleep(2 * time.Second) // room for a second row or change to appear, if the redrive had doubled
	rows := e.count("SELECT count() FROM events WHERE source = 'test-shop' AND id = 'order-1'")
	changes := e.msgs(stream.DerivedStream, "customer.stage_changed."+key)
	transitions := e.count("SELECT count() FROM stage_transitions WHERE customer_id = 'cust-redrive'")
	t.Logf("after %d redrives: %d rows in events, %d stage_changed events, %d stage_transitions rows", len(seqs), rows, changes, transitions)
	if rows != 1 || changes != 1 {
		t.Fatalf("%d rows and %d stage changes, want 1 and 1", rows, changes)
	}
	if n := e.msgs(stream.DeadLetterStream, "deadletter.>"); n != 0 {
		t.Errorf("%d dead letters left, want 0 (redriven ones leave DEADLETTER)", n)
	}
	if n := e.count("SELECT count() FROM deadletter_resolutions WHERE resolution = 'redriven' AND id = 'order-1'"); n != uint64(len(seqs)) {
		t.Errorf("%d redriven resolutions, want %d", n, len(seqs))
	}
	if n := e.count("SELECT count() FROM ops_audit WHERE action = 'deadletters.redrive' AND actor LIKE 'test:%'"); n != uint64(len(seqs)+1) {
		t.Errorf("%d audit rows, want %d (one per redrive command)", n, len(seqs)+1)
	}
	if n := e.msgs(journeyctl.OpsStream, "ops.deadletters.redrive"); n != uint64(len(seqs)+1) {
		t.Errorf("%d ops events, want %d", n, len(seqs)+1)
	}
}
