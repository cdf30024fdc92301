package writer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
)

// rejectingStore refuses any insert that contains the row with seq bad,
// as ClickHouse refuses a whole INSERT for one unparsable value, and fails
// transiently the first flaky inserts.
type rejectingStore struct {
	bad      uint64
	flaky    int
	calls    int
	inserted map[uint64]bool
}

func (s *rejectingStore) InsertEvents(_ context.Context, rows []warehouse.EventRow) error {
	s.calls++
	if s.flaky > 0 {
		s.flaky--
		return io.ErrUnexpectedEOF
	}
	for _, r := range rows {
		if r.StreamSeq == s.bad {
			return &clickhouse.Exception{Code: 27, Message: "Cannot parse input"}
		}
	}
	for _, r := range rows {
		if s.inserted[r.StreamSeq] {
			return errors.New("duplicate insert")
		}
		s.inserted[r.StreamSeq] = true
	}
	return nil
}
func (s *rejectingStore) StoredVersions(_ context.Context, hashes []uint64) (map[warehouse.Identity]touchpoint.Version, error) {
	return map[warehouse.Identity]touchpoint.Version{}, nil // the insert itself refuses a second row
}
func (s *rejectingStore) InsertDead(context.Context, []warehouse.DeadRow) error       { return nil }
func (s *rejectingStore) IndexIdentities(context.Context, []warehouse.EventRow) error { return nil }
func (s *rejectingStore) ExistingDeadSeqs(context.Context, string, []uint64) (map[uint64]bool, error) {
	return map[uint64]bool{}, nil
}
func (s *rejectingStore) CheckEventRow(*warehouse.EventRow) error                   { return nil }
func (s *rejectingStore) Running(context.Context, string) (bool, error)             { return false, nil }
func (s *rejectingStore) RunningWithPrefix(context.Context, string) (uint64, error) { return 0, nil }

func testPipeline(st store) *pipeline {
	set := Settings{Consumer: "writer", BatchSize: 1000, AckWait: time.Minute, InsertTimeout: 5 * time.Second, MaxBackoff: 20 * time.Millisecond}
	return &pipeline{set: set, store: st, leases: newLeases(), m: newMetrics(prometheus.NewRegistry()),
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), ready: &readiness{}, now: time.Now}
}

// The split is the part of the bad-row story that needs a server to reject
// a row; ClickHouse 18.16 accepts every value the columnar protocol can
// carry, so the rejection is simulated here and the rest is tested live.
func TestInsertSplitsAroundTheRejectedRowAndRetriesTransientErrors(t *testing.T) {
	st := &rejectingStore{bad: 637, flaky: 2, inserted: map[uint64]bool{}}
	p := testPipeline(st)
	items := make([]*item, 1000)
	for i := range items {
		seq := uint64(i + 1)
		p.leases.add(seq, nil, time.Now())
		items[i] = &item{seq: seq, delivered: 1, row: warehouse.EventRow{StreamSeq: seq, Kind: "visit", CustomerID: "c"}}
	}
	if err := p.insert(context.Background(), items); err != nil {
		t.Fatal(err)
	}
	if len(st.inserted) != 999 {
		t.Fatalf("inserted %d rows, want 999", len(st.inserted))
	}
	for _, it := range items {
		switch {
		case it.seq == 637 && (it.deadClass != reasonRejected || it.inserted):
			t.Fatalf("bad row: class %q inserted %v", it.deadClass, it.inserted)
		case it.seq != 637 && (!it.inserted || it.deadClass != ""):
			t.Fatalf("row %d: inserted %v class %q", it.seq, it.inserted, it.deadClass)
		}
	}
	// 2 transient failures, then a binary search: about 2*log2(1000) inserts.
	if st.calls > 2+1+2*10 {
		t.Fatalf("%d insert calls: the split is not logarithmic", st.calls)
	}
}

func TestInsertLeavesLapsedLeasesToTheirRedelivery(t *testing.T) {
	st := &rejectingStore{inserted: map[uint64]bool{}}
	p := testPipeline(st)
	p.leases.add(1, nil, time.Now())
	p.leases.add(2, nil, time.Now().Add(-time.Hour)) // lapsed
	items := []*item{{seq: 1, delivered: 1, row: warehouse.EventRow{StreamSeq: 1}}, {seq: 2, delivered: 1, row: warehouse.EventRow{StreamSeq: 2}}}
	if err := p.insert(context.Background(), items); err != nil {
		t.Fatal(err)
	}
	if !st.inserted[1] || st.inserted[2] || !items[1].abandoned {
		t.Fatalf("inserted %v, abandoned %v", st.inserted, items[1].abandoned)
	}
	// A redelivery of a held message voids the held copy too.
	if p.leases.add(1, nil, time.Now()) || p.leases.valid(1, time.Time{}) {
		t.Fatal("a redelivered held message must void the lease")
	}
}
