package writer_test

import (
	"context"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/envdoc"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
	"github.com/klantreis/journey/services/writer"
)

func TestConfigIsDocumented(t *testing.T) {
	_, doc, err := envdoc.FindDoc()
	if err != nil {
		t.Fatal(err)
	}
	missing, err := envdoc.Missing(&writer.Config{}, doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Fatalf("docs/configuration.md does not list %v", missing)
	}
}

func TestHundredThousandEventsWithDuplicatesAreStoredOnceFieldByField(t *testing.T) {
	e := sharedEnv(t)
	const n = 100_000
	at := time.Now().Add(-48 * time.Hour).Truncate(time.Millisecond)
	events := make([]touchpoint.Event, n)
	var msgs []*nats.Msg
	rnd := rand.New(rand.NewPCG(1, 2))
	dups := 0
	for i := range events {
		events[i] = gen(t, i, at)
		m := factMsg(t, &events[i])
		if i%100 == 3 {
			// Structured mode, as sdk-go's JetStream sender sends it.
			m = &nats.Msg{Subject: m.Subject, Data: events[i].MarshalStructured(), Header: nats.Header{jetstream.MsgIDHeader: m.Header[jetstream.MsgIDHeader]}}
		}
		msgs = append(msgs, m)
		if i > 0 && i%10 == 0 {
			// A retry of an earlier event by (source, id).
			j := i - 1 - rnd.IntN(min(i, 500))
			msgs = append(msgs, factMsg(t, &events[j]))
			dups++
		}
	}
	base := e.inProc(e.config(nil))
	start := time.Now()
	stored := e.publish(msgs)
	t.Logf("published %d messages in %s", len(msgs), time.Since(start))
	if stored != n {
		t.Fatalf("JetStream stored %d of %d unique events (%d duplicates sent)", stored, n, dups)
	}
	waitFor(t, 2*time.Minute, "all events stored", func() bool {
		return e.count("SELECT count() FROM events") >= n && e.drained("writer")
	})
	t.Logf("stored %d events in %s", n, time.Since(start))
	e.assertExactlyOnce(n)
	logMetrics(t, base)
	// Under heavy load an insert may time out yet be stored, and its
	// messages be redelivered; they are then counted as duplicates skipped.
	written, skipped := metric(t, base, "journey_writer_rows_written_total"), metric(t, base, "journey_writer_duplicates_skipped_total")
	if written > n || written+skipped < n {
		t.Fatalf("rows_written_total %v, duplicates_skipped_total %v, for %d events", written, skipped, n)
	}

	// Field by field for a sample.
	ctx := context.Background()
	for k := 0; k < 300; k++ {
		i := rnd.IntN(n)
		ev := &events[i]
		pl, err := touchpoint.Validate(ev, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		want := warehouse.NewEventRow(0, ev, &pl, time.Time{})
		var got warehouse.EventRow
		var ms int64
		var unix uint32
		err = e.db.Conn.QueryRow(ctx, `SELECT stream_seq, id, source, type, kind, customer_id, time_ms, toUInt32(time), ext_keys, ext_values,
 account_id, contact_id, dmu_role, channel, campaign, status, amount_cents, currency, items, score,
 quote_id, order_id, complaint_id, survey_id, category, severity, data, id_hash, content_hash, revision FROM events WHERE source = ? AND id = ?`, ev.Source, ev.ID).Scan(
			&got.StreamSeq, &got.ID, &got.Source, &got.Type, &got.Kind, &got.CustomerID, &ms, &unix, &got.ExtKeys, &got.ExtValues,
			&got.AccountID, &got.ContactID, &got.DMURole, &got.Channel, &got.Campaign, &got.Status, &got.AmountCents, &got.Currency, &got.Items, &got.Score,
			&got.QuoteID, &got.OrderID, &got.ComplaintID, &got.SurveyID, &got.Category, &got.Severity, &got.Data, &got.IDHash, &got.ContentHash, &got.Revision)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if ms != ev.Time.UnixMilli() || int64(unix) != ev.Time.Unix() {
			t.Fatalf("event %d: time_ms %d / time %d, want %d / %d", i, ms, unix, ev.Time.UnixMilli(), ev.Time.Unix())
		}
		if got.StreamSeq == 0 {
			t.Fatalf("event %d: no stream_seq", i)
		}
		got.StreamSeq = 0
		if len(got.ExtKeys) == 0 {
			got.ExtKeys, got.ExtValues = nil, nil
		}
		want.Time, want.IngestedAt = time.Time{}, time.Time{}
		if !equalRows(got, want) {
			t.Fatalf("event %d:\n got %+v\nwant %+v", i, got, want)
		}
	}
}

func equalRows(a, b warehouse.EventRow) bool {
	if (a.Score == nil) != (b.Score == nil) || a.Score != nil && *a.Score != *b.Score {
		return false
	}
	a.Score, b.Score = nil, nil
	if strings.Join(a.ExtKeys, ",") != strings.Join(b.ExtKeys, ",") || strings.Join(a.ExtValues, ",") != strings.Join(b.ExtValues, ",") {
		return false
	}
	a.ExtKeys, a.ExtValues, b.ExtKeys, b.ExtValues = nil, nil, nil, nil
	return reflect.DeepEqual(a, b)
}

func TestOneBadRowAmong999GoodIsDeadLetteredAlone(t *testing.T) {
	e := sharedEnv(t)
	at := time.Now().Add(-time.Hour)
	msgs := genMsgs(t, 0, 1000, at)
	// The 501st breaks the survey schema: the score is out of 0..10.
	bad := gen(t, 4, at)
	bad.ID = "bad-one"
	bad.Data = []byte(`{"survey_id":"S-bad","score":11}`)
	msgs[500] = factMsg(t, &bad)
	if e.publish(msgs) != 1000 {
		t.Fatal("publish")
	}
	// One batch holds all 1000 (published before the writer starts).
	cfg := e.config(nil)
	cfg.Writer.BatchSize = 1000
	cfg.Writer.BatchAge = 2 * time.Second
	base := e.inProc(cfg)
	waitFor(t, time.Minute, "batch stored", func() bool { return e.drained("writer") && e.count("SELECT count() FROM events") >= 999 })
	e.assertExactlyOnce(999)
	if n := e.count("SELECT count() FROM events WHERE id = 'bad-one'"); n != 0 {
		t.Fatal("the bad row was stored")
	}
	var class, text, raw string
	var seq uint64
	if err := e.db.Conn.QueryRow(context.Background(), "SELECT error_class, error_text, raw, stream_seq FROM events_dead").Scan(&class, &text, &raw, &seq); err != nil {
		t.Fatal(err)
	}
	if e.count("SELECT count() FROM events_dead") != 1 || class != "invalid" || !strings.Contains(text, "data.score") || raw != `{"survey_id":"S-bad","score":11}` || seq != 501 {
		t.Fatalf("events_dead: class %q text %q raw %q seq %d", class, text, raw, seq)
	}
	if got := metric(t, base, `journey_writer_dead_lettered_total{reason="invalid"}`); got != 1 {
		t.Fatalf("dead_lettered_total{invalid} = %v", got)
	}
	if got := metric(t, base, "journey_writer_batches_total"); got != 1 {
		t.Fatalf("%v batches, want the 1000 messages in one", got)
	}
	dl, err := e.js.Stream(context.Background(), stream.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := dl.GetLastMsgForSubject(context.Background(), stream.DeadLetterSubject("writer"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Header.Get(stream.HeaderDeadReason), "data.score") || m.Header.Get(stream.HeaderDeadClass) != "invalid" || m.Header.Get(stream.HeaderDeadSeq) != "501" {
		t.Fatalf("dead letter headers %v", m.Header)
	}
}

// Each kind of poison gets its own reason; the good events around them
// are stored.
func TestPoisonIsClassifiedByReason(t *testing.T) {
	e := sharedEnv(t)
	at := time.Now().Add(-time.Hour)
	msgs := genMsgs(t, 0, 10, at)
	subject := stream.PublishSubject(touchpoint.KindVisit, "cust-x")
	msgs = append(msgs,
		&nats.Msg{Subject: subject, Data: []byte(`{"specversion":"1.0",`), Header: nats.Header{jetstream.MsgIDHeader: []string{"p1"}}},
		func() *nats.Msg {
			ev := gen(t, 100, at)
			ev.Type = "io.example.something.v1"
			return stream.NewMsg(subject, &ev)
		}(),
		func() *nats.Msg {
			ev := gen(t, 101, at)
			ev.Subject = ""
			return stream.NewMsg(subject, &ev)
		}(),
	)
	if e.publish(msgs) != len(msgs) {
		t.Fatal("publish")
	}
	base := e.inProc(e.config(nil))
	waitFor(t, time.Minute, "all handled", func() bool {
		return e.drained("writer") && e.count("SELECT count() FROM events_dead") >= 3
	})
	e.assertExactlyOnce(10)
	got := map[string]uint64{}
	rows, err := e.db.Conn.Query(context.Background(), "SELECT error_class, count() FROM events_dead GROUP BY error_class")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var c string
		var n uint64
		if err := rows.Scan(&c, &n); err != nil {
			t.Fatal(err)
		}
		got[c] = n
	}
	rows.Close()
	want := map[string]uint64{"decode": 1, "unknown_type": 1, "invalid": 1}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("dead rows by class %v, want %v", got, want)
	}
	for class := range want {
		if m := metric(t, base, `journey_writer_dead_lettered_total{reason="`+class+`"}`); m != 1 {
			t.Fatalf("dead_lettered_total{%s} = %v", class, m)
		}
	}
	info, err := mustStream(t, e, stream.DeadLetterStream).Info(context.Background())
	if err != nil || info.State.Msgs != 3 {
		t.Fatalf("dead-letter stream: %+v, %v", info, err)
	}
}
