package writer_test

import (
	"context"
	"strings"
	"testing"
	"time"

	cejs "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
)

// sdkEvent is gen's touchpoint i as an sdk-go event.
func sdkEvent(t *testing.T, i int, at time.Time) (cloudevents.Event, touchpoint.Event) {
	t.Helper()
	tp := gen(t, i, at)
	ev := cloudevents.NewEvent()
	ev.SetID(tp.ID)
	ev.SetSource(tp.Source)
	ev.SetType(tp.Type)
	ev.SetSubject(tp.Subject)
	ev.SetTime(tp.Time)
	if err := ev.SetData(cloudevents.ApplicationJSON, tp.Data); err != nil {
		t.Fatal(err)
	}
	return ev, tp
}

// sdk-go's JetStream binding sets no Nats-Msg-Id, so the broker stores a
// resend as a second message. Each event sent twice, in binary and in
// structured mode, and one event sent once in each mode, is one row.
func TestSameEventTwiceWithoutMsgIDIsOneRow(t *testing.T) {
	e := sharedEnv(t)
	ops := e.inProc(e.config(nil))
	at := time.Now().Add(-time.Hour)
	send := func(ev cloudevents.Event, tp touchpoint.Event, structured bool) {
		t.Helper()
		k, _ := touchpoint.KindOf(tp.Type)
		sender, err := cejs.NewSenderFromConn(e.nc, stream.TouchpointStream, stream.PublishSubject(k, tp.Subject), nil)
		if err != nil {
			t.Fatal(err)
		}
		c, err := cloudevents.NewClient(sender)
		if err != nil {
			t.Fatal(err)
		}
		ctx := cloudevents.WithEncodingBinary(context.Background())
		if structured {
			ctx = cloudevents.WithEncodingStructured(context.Background())
		}
		if res := c.Send(ctx, ev); cloudevents.IsUndelivered(res) {
			t.Fatalf("send %s: %v", tp.ID, res)
		}
	}
	for i := range 3 {
		ev, tp := sdkEvent(t, i, at)
		switch i {
		case 0: // binary twice
			send(ev, tp, false)
			send(ev, tp, false)
		case 1: // structured twice
			send(ev, tp, true)
			send(ev, tp, true)
		case 2: // once in each mode
			send(ev, tp, false)
			send(ev, tp, true)
		}
	}
	s := mustStream(t, e, stream.TouchpointStream)
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 6 {
		t.Fatalf("the stream holds %d messages, want 6: the broker must not have deduplicated them", info.State.Msgs)
	}
	waitFor(t, time.Minute, "the writer to take all six", func() bool { return e.drained("writer") })
	e.assertExactlyOnce(3)
	skipped := metric(t, ops, "journey_writer_duplicates_skipped_total")
	t.Logf("6 messages, %d rows, %v duplicates skipped", e.count("SELECT count() FROM events"), skipped)
	if skipped != 3 {
		t.Fatalf("%v duplicates skipped, want 3", skipped)
	}
}

// A replay of the whole stream through a second writer consumer into the
// same table: every message is delivered for the first time, and none
// adds a row.
func TestReplayThroughASecondConsumerAddsNoRows(t *testing.T) {
	e := sharedEnv(t)
	const n = 6000
	e.publishN(n, time.Now().Add(-time.Hour))
	e.inProc(e.config(nil))
	waitFor(t, time.Minute, "the live writer to store everything", func() bool {
		return e.count("SELECT count() FROM events") >= n && e.drained("writer")
	})
	cfg := e.config(nil)
	cfg.Writer.Consumer = "writer-replay"
	replay := e.inProc(cfg)
	waitFor(t, time.Minute, "the replay consumer to take the whole stream", func() bool { return e.drained("writer-replay") })
	e.assertExactlyOnce(n)
	skipped := metric(t, replay, "journey_writer_duplicates_skipped_total")
	written := metric(t, replay, "journey_writer_rows_written_total")
	t.Logf("replay of %d messages: %v rows written, %v duplicates skipped", n, written, skipped)
	if skipped != n || written != 0 {
		t.Fatalf("replay: %v written, %v skipped; want 0 and %d", written, skipped, n)
	}
}

// The same (source, id) with other content at the same revision is a
// conflict: dead-lettered with the way out in the reason, the stored row
// unchanged. A correction (revision 1) is stored beside the original and
// the original sent again afterwards is stale.
func TestConflictIsDeadLetteredAndCorrectionIsStored(t *testing.T) {
	e := sharedEnv(t)
	e.inProc(e.config(nil))
	at := time.Now().Add(-time.Hour)
	orig := gen(t, 4, at) // a survey
	other := orig
	other.Data = []byte(`{"survey_id":"S4","score":10}`)
	fixed := other
	fixed.Extensions = map[string]string{touchpoint.ExtRevision: "1"}
	msgs := []*nats.Msg{factMsg(t, &orig), factMsg(t, &other), factMsg(t, &fixed), factMsg(t, &orig)}
	for _, m := range msgs {
		delete(m.Header, jetstream.MsgIDHeader) // as a producer without message ids sends them
	}
	if got := e.publish(msgs); got != len(msgs) {
		t.Fatalf("stored %d of %d", got, len(msgs))
	}
	waitFor(t, time.Minute, "the writer to take all four", func() bool { return e.drained("writer") })
	if n := e.count("SELECT count() FROM events"); n != 2 {
		t.Fatalf("%d rows, want the original and its correction", n)
	}
	if n := e.count("SELECT count() FROM events WHERE revision = 1 AND data = ?", string(fixed.Data)); n != 1 {
		t.Fatalf("the correction is not stored at revision 1 (%d rows)", n)
	}
	var class, text string
	if err := e.db.Conn.QueryRow(context.Background(), "SELECT error_class, error_text FROM events_dead").Scan(&class, &text); err != nil {
		t.Fatal(err)
	}
	want := `stored at revision 0 with other content; to change an event, send it with the extension revision=1`
	if class != "conflict" || !strings.Contains(text, want) {
		t.Fatalf("dead letter %q: %q, want class conflict saying %q", class, text, want)
	}
	t.Logf("conflict reason: %s", text)
}

// A live writer and a replay writer consume the same events at the same
// time into one table: both hold copies of each event at once, and the
// fence makes them take turns, so each event is one row.
func TestTwoConsumersAtOnceStoreEachEventOnce(t *testing.T) {
	e := sharedEnv(t)
	const n = 20_000
	e.publishN(n, time.Now().Add(-time.Hour))
	live := e.config(nil)
	live.Writer.BatchSize, live.Writer.MaxAckPending = 1000, 4000
	replay := live
	replay.Writer.Consumer = "writer-replay"
	a, b := e.inProc(live), e.inProc(replay)
	waitFor(t, 2*time.Minute, "both consumers to take the whole stream", func() bool {
		return e.drained("writer") && e.drained("writer-replay")
	})
	wa, wb := metric(t, a, "journey_writer_rows_written_total"), metric(t, b, "journey_writer_rows_written_total")
	t.Logf("live wrote %v rows, replay %v; %v fence turns lost", wa, wb,
		metric(t, a, `journey_writer_retries_total{op="fence"}`)+metric(t, b, `journey_writer_retries_total{op="fence"}`))
	e.assertExactlyOnce(n)
	if wa+wb != n {
		t.Fatalf("rows written %v + %v, want %d", wa, wb, n)
	}
}

// A writer killed during an insert leaves the statement running on the
// server, its rows landing after the kill; a writer that judged the same
// event meanwhile would store it a second time. Here the orphan is a slow
// INSERT of one event under a writer's query id (held 3 s), begun before the live writer gets
// the same event: the writer waits for it in its turn and then finds the
// event stored.
func TestAnOrphanedInsertIsWaitedFor(t *testing.T) {
	e := sharedEnv(t)
	ops := e.inProc(e.config(nil))
	ctx := context.Background()
	ev := gen(t, 7, time.Now().Add(-time.Hour))
	pl, err := touchpoint.Validate(&ev, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// The orphan's row, as the killed writer built it, parked in a table
	// without the index view.
	if err := e.db.Conn.Exec(ctx, "CREATE TABLE orphan_rows AS events"); err != nil {
		t.Fatal(err)
	}
	if err := e.db.InsertEventsInto(ctx, "orphan_rows", []warehouse.EventRow{warehouse.NewEventRow(1, &ev, &pl, time.Now())}); err != nil {
		t.Fatal(err)
	}
	slow := warehousetest.SlowInsert(t, e.db, "journey-writer-"+e.db.Database()+"-orphan", "events", "orphan_rows", "1")
	if got := e.publish([]*nats.Msg{factMsg(t, &ev)}); got != 1 {
		t.Fatalf("stored %d of 1", got)
	}
	waitFor(t, time.Minute, "the writer to take the event", func() bool { return e.drained("writer") })
	if err := <-slow; err != nil {
		t.Fatalf("the orphaned insert: %v", err)
	}
	e.assertExactlyOnce(1)
	waited := metric(t, ops, `journey_writer_retries_total{op="orphan_insert"}`)
	t.Logf("the writer retried %v times while the orphan ran; duplicates skipped %v", waited,
		metric(t, ops, "journey_writer_duplicates_skipped_total"))
	if waited == 0 {
		t.Fatal("the writer did not wait for the orphaned insert")
	}
}
