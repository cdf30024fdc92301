package api_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/ops"
	"github.com/klantreis/journey/pkg/warehouse"
	"github.com/klantreis/journey/services/api"
)

// The known data set. Every expected number in the tests is worked out by
// hand from these rows (see the comments next to the assertions).
const (
	c1 = "c1-alice"
	c2 = "c2-bob"
	// c3's id holds what breaks string-built SQL: quotes, a backslash, ?,
	// $1, a server-side parameter and backticks.
	c3 = "c3-x'; DROP TABLE events; --\\ ? $1 {x:String} `tick`"
	c4 = "c4-dora"
	c5 = "c5-emil"
)

func at(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05.000", s)
	if err != nil {
		t, err = time.Parse("2006-01-02 15:04", s)
	}
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func tp(s string) *time.Time { t := at(s); return &t }

type ev struct {
	id, customer, kind, source string
	time                       string
	account, contact, status   string
	quote, order, complaint    string
	score                      *uint8
}

func u8(v uint8) *uint8 { return &v }

var events = []ev{
	{id: "e-c1-visit", customer: c1, kind: "visit", source: "web", time: "2024-01-01 10:00:00.250", account: "acme"},
	{id: "e-c1-survey1", customer: c1, kind: "survey", source: "web", time: "2024-01-02 08:00:00.000", account: "acme", score: u8(9)},
	{id: "e-c1-quote", customer: c1, kind: "quote", source: "crm", time: "2024-01-03 10:00:00.000", account: "acme", quote: "q1", status: "sent"},
	{id: "e-c1-survey2", customer: c1, kind: "survey", source: "web", time: "2024-01-03 12:00:00.000", account: "acme", score: u8(6)},
	{id: "e-c1-o1", customer: c1, kind: "order", source: "shop", time: "2024-01-05 10:00:00.500", account: "acme", order: "o1", status: "placed"},
	{id: "e-c1-survey3", customer: c1, kind: "survey", source: "web", time: "2024-01-20 09:00:00.000", account: "acme", score: u8(10)},
	{id: "e-c1-o2", customer: c1, kind: "order", source: "shop", time: "2024-03-01 10:00:00.000", account: "acme", order: "o2", status: "placed"},
	{id: "e-c1-o3", customer: c1, kind: "order", source: "shop", time: "2024-06-01 10:00:00.000", account: "acme", order: "o3", status: "placed"},
	{id: "e-c2-visit", customer: c2, kind: "visit", source: "web", time: "2024-01-02 09:00:00.000", account: "bobco"},
	{id: "e-c2-quote", customer: c2, kind: "quote", source: "crm", time: "2024-01-04 09:00:00.000", account: "bobco", quote: "q2", status: "sent"},
	{id: "e-c2-complaint", customer: c2, kind: "complaint", source: "support", time: "2024-01-10 11:00:00.000", account: "bobco", complaint: "k-1", status: "opened"},
	{id: "e-c3-visit", customer: c3, kind: "visit", source: "web", time: "2024-01-08 10:00:00.000", account: "it's"},
	{id: "e-c3-quote", customer: c3, kind: "quote", source: "crm", time: "2024-01-09 10:00:00.000", account: "it's", quote: "q3", status: "sent"},
	{id: "e-c3-order", customer: c3, kind: "order", source: "shop", time: "2024-01-15 10:00:00.000", account: "it's", order: "o4", status: "placed"},
	{id: "e-c4-visit", customer: c4, kind: "visit", source: "web", time: "2024-01-01 12:00:00.000"},
	{id: "e-c5-order", customer: c5, kind: "order", source: "shop", time: "2023-01-01 08:00:00.000", order: "o5", status: "placed"},
}

type resp struct {
	customer, contact, account, source, event, time, category, stage string
	score                                                            uint8
	seq                                                              uint64
}

var responses = []resp{
	{c1, "", "acme", "web", "e-c1-survey1", "2024-01-02 08:00", "promoter", "prospect", 9, 2},
	{c1, "", "acme", "web", "e-c1-survey2", "2024-01-03 12:00", "detractor", "prospect", 6, 4},
	{c1, "", "acme", "web", "e-c1-survey3", "2024-01-20 09:00", "promoter", "new_customer", 10, 6},
	{c2, "k1", "bobco", "app", "e-c2-s1", "2024-01-04 10:00", "passive", "prospect", 8, 20},
	{c2, "k2", "bobco", "app", "e-c2-s2", "2024-01-04 10:00", "promoter", "prospect", 10, 21},
	{c2, "", "bobco", "app", "e-c2-s3", "2024-01-05 10:00", "detractor", "prospect", 3, 22},
	{c3, "", "it's", "web", "e-c3-s1", "2024-01-16 10:00", "passive", "new_customer", 7, 30},
	{c4, "", "", "email", "e-c4-s1", "2024-01-03 09:00", "promoter", "prospect", 9, 40},
	// A replayed copy of the same answer (same key, later sequence): FINAL
	// must count it once.
	{c4, "", "", "email", "e-c4-s1", "2024-01-03 09:00", "promoter", "prospect", 9, 41},
	{c5, "", "", "web", "e-c5-s1", "2024-02-07 10:00", "detractor", "ex_customer", 2, 50},
}

type tr struct {
	customer string
	idx      uint32
	version  uint64
	valid    uint8
	from, to string
	at       string
	reason   string
	causes   []string
}

var transitions = []tr{
	{c1, 0, 1, 1, "none", "prospect", "2024-01-01 10:00", "first_touchpoint", []string{"e-c1-visit"}},
	{c1, 1, 1, 1, "prospect", "new_customer", "2024-01-05 10:00", "first_order", []string{"e-c1-o1"}},
	{c1, 2, 1, 1, "new_customer", "loyal_customer", "2024-06-01 10:00", "repeat_orders", []string{"e-c1-o1", "e-c1-o2", "e-c1-o3"}},
	{c2, 0, 1, 1, "none", "prospect", "2024-01-02 09:00", "first_touchpoint", []string{"e-c2-visit"}},
	{c3, 0, 1, 1, "none", "prospect", "2024-01-08 10:00", "first_touchpoint", []string{"e-c3-visit"}},
	{c3, 1, 1, 1, "prospect", "new_customer", "2024-01-15 10:00", "first_order", []string{"e-c3-order"}},
	{c4, 0, 1, 1, "none", "prospect", "2024-01-01 12:00", "first_touchpoint", []string{"e-c4-visit"}},
	// A transition that a late cancellation rewrote away: the newer
	// version marks it invalid, so it must not count anywhere.
	{c4, 1, 1, 1, "prospect", "new_customer", "2024-01-10 10:00", "first_order", []string{"e-c4-gone"}},
	{c4, 1, 2, 0, "prospect", "new_customer", "2024-01-10 10:00", "first_order", []string{"e-c4-gone"}},
	// A tombstone as the projector writes it when a history shrinks:
	// valid = 0, no stages, zero time.
	{c2, 1, 2, 0, "", "", "", "", nil},
	{c5, 0, 1, 1, "none", "prospect", "2023-01-01 08:00", "first_touchpoint", []string{"e-c5-order"}},
	{c5, 1, 1, 1, "prospect", "new_customer", "2023-01-01 08:00", "first_order", []string{"e-c5-order"}},
	{c5, 2, 1, 1, "new_customer", "ex_customer", "2024-01-01 08:00", "inactive", []string{"e-c5-order"}},
}

type st struct {
	id, stage, since, account     string
	version                       uint64
	first, last                   string
	orders                        uint32
	visit, quote, order, loyal    *time.Time
	score                         *uint8
	category                      string
	responses, complaints, atRisk uint32
}

var states = []st{
	{c1, "loyal_customer", "2024-06-01 10:00", "acme", 9, "2024-01-01 10:00", "2024-06-01 10:00", 3,
		tp("2024-01-01 10:00"), tp("2024-01-03 10:00"), tp("2024-01-05 10:00"), tp("2024-06-01 10:00"), u8(10), "promoter", 3, 0, 0},
	{c2, "prospect", "2024-01-02 09:00", "bobco", 4, "2024-01-02 09:00", "2024-01-10 11:00", 0,
		tp("2024-01-02 09:00"), tp("2024-01-04 09:00"), nil, nil, u8(3), "detractor", 3, 1, 1},
	{c3, "new_customer", "2024-01-15 10:00", "it's", 4, "2024-01-08 10:00", "2024-01-16 10:00", 1,
		tp("2024-01-08 10:00"), tp("2024-01-09 10:00"), tp("2024-01-15 10:00"), nil, u8(7), "passive", 1, 0, 0},
	// c4 once looked like a customer (version 1); version 2 is the truth.
	{c4, "new_customer", "2024-01-10 10:00", "", 1, "2024-01-01 12:00", "2024-01-10 10:00", 1,
		tp("2024-01-01 12:00"), nil, tp("2024-01-10 10:00"), nil, u8(9), "promoter", 1, 0, 0},
	{c4, "prospect", "2024-01-01 12:00", "", 2, "2024-01-01 12:00", "2024-01-10 10:00", 0,
		tp("2024-01-01 12:00"), nil, nil, nil, u8(9), "promoter", 1, 0, 0},
	{c5, "ex_customer", "2024-01-01 08:00", "", 3, "2023-01-01 08:00", "2024-02-07 10:00", 1,
		nil, nil, tp("2023-01-01 08:00"), nil, u8(2), "detractor", 1, 0, 1},
}

// loadFixture inserts the data set through batches (18.16 cannot take an
// INSERT … VALUES over the native protocol).
func loadFixture(t testing.TB, db *warehouse.DB) {
	t.Helper()
	ctx := context.Background()
	b, err := db.Conn.PrepareBatch(ctx, `INSERT INTO events (stream_seq, id, source, type, kind, customer_id, time, time_ms,
		ingested_at, account_id, contact_id, status, quote_id, order_id, complaint_id, score, data)`)
	warehousetest.Must(t, err, "prepare events")
	for i, e := range events {
		tm := at(e.time)
		warehousetest.Must(t, b.Append(uint64(100+i), e.id, e.source, "io.klantreis.touchpoint."+e.kind+".v1", e.kind, e.customer,
			tm, tm.UnixMilli(), tm, e.account, e.contact, e.status, e.quote, e.order, e.complaint, e.score, "{}"), "append event")
	}
	warehousetest.Must(t, b.Send(), "send events")

	b, err = db.Conn.PrepareBatch(ctx, `INSERT INTO satisfaction_responses (customer_id, contact_id, account_id, source,
		event_id, survey_id, time, score, category, comment, stage, stream_seq)`)
	warehousetest.Must(t, err, "prepare responses")
	for _, r := range responses {
		warehousetest.Must(t, b.Append(r.customer, r.contact, r.account, r.source, r.event, "s-"+r.event, at(r.time), r.score,
			r.category, "", r.stage, r.seq), "append response")
	}
	warehousetest.Must(t, b.Send(), "send responses")

	b, err = db.Conn.PrepareBatch(ctx, `INSERT INTO stage_transitions (customer_id, idx, version, valid, from_stage, to_stage,
		at, reason, cause_event_ids, rules_version)`)
	warehousetest.Must(t, err, "prepare transitions")
	for _, x := range transitions {
		tm := time.Unix(0, 0).UTC()
		if x.at != "" {
			tm = at(x.at)
		}
		warehousetest.Must(t, b.Append(x.customer, x.idx, x.version, x.valid, x.from, x.to, tm, x.reason, x.causes, "r1"), "append transition")
	}
	warehousetest.Must(t, b.Send(), "send transitions")

	b, err = db.Conn.PrepareBatch(ctx, `INSERT INTO customer_state (customer_id, version, updated_at, stage, stage_since,
		account_id, first_seen, last_touch, counted_orders, first_visit_at, first_quote_at, first_order_at, first_loyal_at,
		expires_at, offboarded, offboarded_at, nps_score, nps_category, nps_comment, responses, open_complaints,
		last_complaint_at, at_risk, rules_version)`)
	warehousetest.Must(t, err, "prepare state")
	for _, s := range states {
		var complaintAt *time.Time
		if s.complaints > 0 {
			complaintAt = tp("2024-01-10 11:00")
		}
		warehousetest.Must(t, b.Append(s.id, s.version, at(s.last), s.stage, at(s.since), s.account, at(s.first), at(s.last),
			s.orders, s.visit, s.quote, s.order, s.loyal, (*time.Time)(nil), uint8(0), (*time.Time)(nil), s.score, s.category,
			"", s.responses, s.complaints, complaintAt, uint8(s.atRisk), "r1"), "append state")
	}
	warehousetest.Must(t, b.Send(), "send state")
}

// newServer returns an API over a fresh database with the fixture.
func newServer(t testing.TB, set api.Settings) (*httptest.Server, *api.Server, *warehouse.DB) {
	t.Helper()
	db := warehousetest.Open(t)
	loadFixture(t, db)
	return serve(t, db, set)
}

func serve(t testing.TB, db *warehouse.DB, set api.Settings) (*httptest.Server, *api.Server, *warehouse.DB) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("API_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	srv, err := api.NewServer(set, ops.NewHealth(), db.Ping, log)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetStore(db)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return hs, srv, db
}
