package warehouse_test

import (
	"context"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
)

func TestExpiredMonths(t *testing.T) {
	cut := time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)
	got := warehouse.ExpiredMonths([]string{"202603", "202602", "202512", "tuple()", "202613", "202601"}, cut)
	if want := []string{"202512", "202601", "202602"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("%v, want %v", got, want)
	}
	// A month ending exactly at the cut is wholly before it.
	if got := warehouse.ExpiredMonths([]string{"202602"}, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)); len(got) != 1 {
		t.Fatalf("%v", got)
	}
}

func TestTTLClauses(t *testing.T) {
	r := warehouse.Retention{Kinds: map[touchpoint.Kind]time.Duration{touchpoint.KindVisit: 24 * time.Hour, touchpoint.KindSurvey: 48 * time.Hour}, DeadLetters: time.Hour}
	got := warehouse.TTLClauses(r)
	want := map[string]string{
		"events":                 "toDateTime(time) + INTERVAL 86400 SECOND DELETE WHERE kind = 'visit', toDateTime(time) + INTERVAL 172800 SECOND DELETE WHERE kind = 'survey'",
		"satisfaction_responses": "toDateTime(time) + INTERVAL 172800 SECOND",
		"events_dead":            "dead_at + INTERVAL 3600 SECOND",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%v\nwant %v", got, want)
	}
	if len(warehouse.TTLClauses(warehouse.Retention{})) != 0 {
		t.Fatal("no retention gave a TTL")
	}
}

// On 18.16 (no TTL … WHERE) a pass drops the months older than the
// longest retention whole, deletes what a shorter retention of one kind
// expires, and leaves everything younger; a second pass does nothing. On
// a server with TTL … WHERE the pass sets the tables' TTLs instead, and
// the server's TTL merge (forced here with OPTIMIZE … FINAL) expires the
// same rows.
func TestApplyRetentionDropsAndDeletes(t *testing.T) {
	db := warehousetest.Open(t)
	ctx := context.Background()
	now := time.Now().UTC()
	old := now.AddDate(-3, 0, 0)
	recent := now.AddDate(0, -2, 0)
	fresh := now.Add(-24 * time.Hour)
	visit := touchpoint.Visit{Common: touchpoint.Common{Channel: "web"}}
	order := touchpoint.Order{OrderID: "o", Status: "placed", Amount: touchpoint.Amount{Cents: 1}, Currency: "EUR"}
	rows := []warehouse.EventRow{
		eventRow(t, 1, "v-old", "c", visit, old), eventRow(t, 2, "o-old", "c", order, old),
		eventRow(t, 3, "v-recent", "c", visit, recent), eventRow(t, 4, "o-recent", "c", order, recent),
		eventRow(t, 5, "v-fresh", "c", visit, fresh),
	}
	if err := db.InsertEvents(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if err := db.InsertDead(ctx, []warehouse.DeadRow{{Consumer: "writer", StreamSeq: 1, Subject: "touchpoint.0.visit.c", DeadAt: old},
		{Consumer: "writer", StreamSeq: 2, Subject: "touchpoint.0.visit.c", DeadAt: fresh}}); err != nil {
		t.Fatal(err)
	}
	long := 2 * 365 * 24 * time.Hour
	r := warehouse.Retention{Kinds: map[touchpoint.Kind]time.Duration{
		touchpoint.KindVisit: 30 * 24 * time.Hour, touchpoint.KindQuote: long, touchpoint.KindOrder: long,
		touchpoint.KindComplaint: long, touchpoint.KindSurvey: long, touchpoint.KindOffboarded: long,
	}, DeadLetters: 30 * 24 * time.Hour}
	rep, err := db.ApplyRetention(ctx, r, now)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first pass on %s: dropped %v, deleted %v, ttl %q", db.Features.Version(), rep.DroppedPartitions, rep.Deleted, rep.TTL)
	if db.Features.TTLWhere {
		if !strings.Contains(rep.TTL, "events: TTL") {
			t.Fatalf("no TTL set: %q", rep.TTL)
		}
		for _, table := range []string{"events", "events_dead"} {
			if err := db.Conn.Exec(ctx, "OPTIMIZE TABLE "+table+" FINAL"); err != nil {
				t.Fatal(err)
			}
		}
	}
	var ids []string
	rs, err := db.Conn.Query(ctx, "SELECT id FROM events ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var id string
		if err := rs.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	rs.Close()
	if want := []string{"o-recent", "v-fresh"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("events left: %v, want %v", ids, want)
	}
	// What the pass reports: on 18.16 the partitions and mutations; a TTL
	// server reports the TTL (checked above) and expires rows itself.
	if !db.Features.TTLWhere {
		sort.Strings(rep.DroppedPartitions)
		if len(rep.DroppedPartitions) != 2 || !strings.HasPrefix(rep.DroppedPartitions[0], "events:") || !strings.HasPrefix(rep.DroppedPartitions[1], "events_dead:") {
			t.Fatalf("dropped %v, want the old month of events and of events_dead", rep.DroppedPartitions)
		}
		if rep.Deleted["events:visit"] != 1 {
			t.Fatalf("deleted %v, want the recent visit", rep.Deleted)
		}
	}
	var dead uint64
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM events_dead").Scan(&dead); err != nil {
		t.Fatal(err)
	}
	if dead != 1 {
		t.Fatalf("%d dead rows, want the fresh one", dead)
	}
	rep, err = db.ApplyRetention(ctx, r, now)
	if err != nil || len(rep.DroppedPartitions) != 0 || len(rep.Deleted) != 0 || rep.TTL != "" {
		t.Fatalf("second pass: %+v %v, want nothing to do", rep, err)
	}
	// One kind kept for ever: no month can be dropped whole, only deletes.
	delete(r.Kinds, touchpoint.KindOffboarded)
	if _, ok := r.Longest(); ok {
		t.Fatal("Longest with a kind kept for ever")
	}
}
