package projector

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/klantreis/journey/internal/natsserver/natstest"
	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/warehouse"
)

// A row ClickHouse can never take (here a time before 1900, outside the
// range of any DateTime column) must not cost the rows published beside it:
// the loader halves the set until the bad row is alone, dead-letters that
// one with the reason, stores the others and acks the messages.
func TestLoaderDeadLettersOnlyTheRejectedRow(t *testing.T) {
	db := warehousetest.Open(t)
	srv := natstest.Start(t)
	nc, js, err := stream.Connect(stream.Conn{URL: srv.ClientURL(), RequestTimeout: 10 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := stream.DefaultTopology().Ensure(ctx, js); err != nil {
		t.Fatal(err)
	}
	const outbox = "OUTBOX_REJECTED"
	if _, err := js.CreateOrUpdateStream(ctx, stream.ProjectorOutboxConfig(outbox, 1)); err != nil {
		t.Fatal(err)
	}

	// Two messages of 10 customers each; customer 7's state row is bad.
	all := sampleRows()
	bad := "cust/7"
	for m := range 2 {
		set := rowSet{States: append([]warehouse.CustomerStateRow{}, all.States[m*10:m*10+10]...),
			Transitions: all.Transitions[m*10 : m*10+10]}
		for i := range set.States {
			if set.States[i].CustomerID == bad {
				set.States[i].UpdatedAt = time.Date(1800, 1, 1, 0, 0, 0, 0, time.UTC)
			}
		}
		msg, err := encodeRowSet(&set)
		if err != nil {
			t.Fatal(err)
		}
		msg.Subject = outboxSubject(outbox)
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}

	ld := &loader{js: js, stream: outbox, durable: "test-warehouse", db: openConn{db}, maxRows: 1000, maxWait: 200 * time.Millisecond,
		retryMax: 100 * time.Millisecond, met: newMetrics(prometheus.NewRegistry()), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	lctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); ld.run(lctx) }()
	defer func() { stop(); <-done }()

	// The work queue is empty once both messages are acked.
	for {
		s, err := js.Stream(ctx, outbox)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("outbox still holds %d messages: the rejected row blocks the loader", info.State.Msgs)
		case <-time.After(50 * time.Millisecond):
		}
	}

	got, err := db.ProjectedCustomers(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for _, c := range got {
		stored[c.CustomerID] = true
	}
	if len(stored) != 19 || stored[bad] {
		t.Fatalf("customer_state holds %d customers (bad one stored: %v), want the 19 good ones", len(stored), stored[bad])
	}
	var transitions uint64
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM stage_transitions FINAL").Scan(&transitions); err != nil {
		t.Fatal(err)
	}
	if transitions != 20 {
		t.Fatalf("stage_transitions holds %d rows, want all 20 (only the bad state row is set aside)", transitions)
	}

	dl, err := js.Stream(ctx, stream.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := dl.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("%d dead letters, want 1 (the bad row alone)", info.State.Msgs)
	}
	m, err := dl.GetMsg(ctx, info.State.FirstSeq)
	if err != nil {
		t.Fatal(err)
	}
	if c := m.Header.Get(stream.HeaderDeadClass); c != classRejected {
		t.Fatalf("dead letter class %q, want %q", c, classRejected)
	}
	if r := m.Header.Get(stream.HeaderDeadReason); r == "" {
		t.Fatal("dead letter gives no reason")
	}
	var row rowSet
	if err := json.Unmarshal(m.Data, &row); err != nil {
		t.Fatal(err)
	}
	if row.rows() != 1 || len(row.States) != 1 || row.States[0].CustomerID != bad {
		t.Fatalf("dead letter holds %+v, want the one state row of %s", row, bad)
	}
	if id := m.Header.Get(jetstream.MsgIDHeader); id != "dl-test-warehouse-"+row.key() {
		t.Fatalf("dead letter id %q does not name the row", id)
	}
	t.Logf("stored %d customers and %d transitions; dead-lettered %s: %s", len(stored), transitions, row.key(), m.Header.Get(stream.HeaderDeadReason))
}

// openConn is a connection that is open from the start.
type openConn struct{ db *warehouse.DB }

func (c openConn) DB() *warehouse.DB { return c.db }
