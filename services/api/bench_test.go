package api_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/warehouse"
	"github.com/klantreis/journey/services/api"
)

// benchSize reads JOURNEY_BENCH_CUSTOMERS (default 100 000 customers with
// 10 events each: 1 M events).
func benchSize() int {
	if v, err := strconv.Atoi(os.Getenv("JOURNEY_BENCH_CUSTOMERS")); err == nil && v > 0 {
		return v
	}
	return 100_000
}

var benchKinds = []string{"visit", "visit", "quote", "survey", "order", "visit", "complaint", "order", "survey", "order"}
var benchSources = []string{"web", "app", "crm", "shop", "email"}
var benchStages = []string{"prospect", "new_customer", "loyal_customer", "ex_customer"}

// loadLarge writes a synthetic data set: customers × 10 events over 2024
// and 2025, one survey answer per survey event, one state row and 1–3
// transitions per customer.
func loadLarge(b *testing.B, db *warehouse.DB, customers int) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	const chunk = 20_000
	seq := uint64(0)
	for lo := 0; lo < customers; lo += chunk {
		hi := min(lo+chunk, customers)
		ev, err := db.Conn.PrepareBatch(ctx, `INSERT INTO events (stream_seq, id, source, type, kind, customer_id, time, time_ms,
			ingested_at, account_id, contact_id, status, order_id, complaint_id, score, data)`)
		if err != nil {
			b.Fatal(err)
		}
		rs, err := db.Conn.PrepareBatch(ctx, `INSERT INTO satisfaction_responses (customer_id, contact_id, account_id, source,
			event_id, survey_id, time, score, category, comment, stage, stream_seq)`)
		if err != nil {
			b.Fatal(err)
		}
		tr, err := db.Conn.PrepareBatch(ctx, `INSERT INTO stage_transitions (customer_id, idx, version, valid, from_stage, to_stage,
			at, reason, cause_event_ids, rules_version)`)
		if err != nil {
			b.Fatal(err)
		}
		cs, err := db.Conn.PrepareBatch(ctx, `INSERT INTO customer_state (customer_id, version, updated_at, stage, stage_since,
			account_id, first_seen, last_touch, counted_orders, first_visit_at, first_quote_at, first_order_at, nps_score,
			nps_category, responses, open_complaints, at_risk, rules_version)`)
		if err != nil {
			b.Fatal(err)
		}
		for c := lo; c < hi; c++ {
			id := fmt.Sprintf("cust-%06d", c)
			acct := fmt.Sprintf("acct-%04d", c%5000)
			t0 := start.Add(time.Duration(rng.Int64N(int64(600 * 24 * time.Hour))))
			tm := t0
			var first [3]*time.Time
			var lastScore uint8
			for i, k := range benchKinds {
				seq++
				tm = tm.Add(time.Duration(rng.Int64N(int64(5 * 24 * time.Hour))))
				src := benchSources[rng.IntN(len(benchSources))]
				eid := fmt.Sprintf("e-%d", seq)
				var score *uint8
				status := ""
				switch k {
				case "survey":
					s := uint8(rng.IntN(11))
					score, lastScore = &s, s
					cat := "detractor"
					if s >= 9 {
						cat = "promoter"
					} else if s >= 7 {
						cat = "passive"
					}
					if err := rs.Append(id, "", acct, src, eid, eid, tm, s, cat, "", benchStages[rng.IntN(4)], seq); err != nil {
						b.Fatal(err)
					}
				case "order":
					status = "placed"
				case "complaint":
					status = "opened"
				}
				tc := tm
				switch {
				case k == "visit" && first[0] == nil:
					first[0] = &tc
				case k == "quote" && first[1] == nil:
					first[1] = &tc
				case k == "order" && first[2] == nil:
					first[2] = &tc
				}
				if err := ev.Append(seq, eid, src, "io.klantreis.touchpoint."+k+".v1", k, id, tm, tm.UnixMilli(), tm, acct, "",
					status, "o-"+strconv.Itoa(i), "", score, "{}"); err != nil {
					b.Fatal(err)
				}
			}
			stage := benchStages[rng.IntN(4)]
			n := 1 + rng.IntN(3)
			from := "none"
			for i := 0; i < n; i++ {
				to := benchStages[i%4]
				if err := tr.Append(id, uint32(i), uint64(1), uint8(1), from, to, t0.Add(time.Duration(i)*time.Hour), "rule", []string{"e-x"}, "r1"); err != nil {
					b.Fatal(err)
				}
				from = to
			}
			cat := "detractor"
			if lastScore >= 9 {
				cat = "promoter"
			} else if lastScore >= 7 {
				cat = "passive"
			}
			atRisk := uint8(0)
			if cat == "detractor" {
				atRisk = 1
			}
			if err := cs.Append(id, uint64(1), tm, stage, t0, acct, t0, tm, uint32(3), first[0], first[1], first[2], &lastScore,
				cat, uint32(2), uint32(1), atRisk, "r1"); err != nil {
				b.Fatal(err)
			}
		}
		for _, bt := range []interface{ Send() error }{ev, rs, tr, cs} {
			if err := bt.Send(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func percentile(d []time.Duration, p float64) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[int(float64(len(d)-1)*p)]
}

// BenchmarkAPI measures p50/p99 latency of the customer and NPS endpoints
// over HTTP (sequential client) against a large data set, next to the same
// queries made directly through the warehouse package in the same run, so
// the ratio shows what HTTP + JSON add. Run:
//
//	go test ./services/api -run '^$' -bench API -benchtime 1x
func BenchmarkAPI(b *testing.B) {
	n := benchSize()
	db := warehousetest.Open(b)
	t0 := time.Now()
	loadLarge(b, db, n)
	b.Logf("loaded %d customers, %d events in %s", n, n*len(benchKinds), time.Since(t0).Round(time.Millisecond))
	// A bulk load leaves many small parts that background merges would
	// combine over the next minutes; measure the steady state instead.
	t0 = time.Now()
	for _, tbl := range []string{"events", "satisfaction_responses", "stage_transitions", "customer_state"} {
		if err := db.Conn.Exec(context.Background(), "OPTIMIZE TABLE "+tbl+" FINAL"); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("merged in %s", time.Since(t0).Round(time.Millisecond))
	// A loaded machine can stretch one query past the default 10s; the
	// benchmark wants the latency, not a 504.
	hs, _, _ := serve(b, db, api.Settings{QueryTimeout: 2 * time.Minute})
	rng := rand.New(rand.NewPCG(3, 4))
	customer := func() string { return fmt.Sprintf("cust-%06d", rng.IntN(n)) }

	// Each case takes its own number of samples per benchmark iteration, so
	// the cheap lookups get enough for a p99 and the heavy aggregates stay
	// affordable; run with -benchtime 1x (ns/op is then the whole sample).
	httpCase := func(name string, samples int, path func() string) {
		b.Run(name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N*samples)
			for i := 0; i < b.N*samples; i++ {
				p := path()
				s := time.Now()
				res, err := http.Get(hs.URL + p)
				if err != nil {
					b.Fatal(err)
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					b.Fatalf("%s: %d %s", p, res.StatusCode, body)
				}
				lat = append(lat, time.Since(s))
			}
			b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "p50_ms")
			b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99_ms")
		})
	}
	directCase := func(name string, samples int, f func(ctx context.Context) error) {
		b.Run(name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N*samples)
			ctx := context.Background()
			for i := 0; i < b.N*samples; i++ {
				s := time.Now()
				if err := f(ctx); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(s))
			}
			b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "p50_ms")
			b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99_ms")
		})
	}
	from, to := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	// Three rounds in one load, so the report can take the median of 3.
	for r := 1; r <= 3; r++ {
		round := "run" + strconv.Itoa(r)
		httpCase(round+"/http/customer", 400, func() string { return "/v1/customers/" + url.PathEscape(customer()) })
		directCase(round+"/direct/customer", 400, func(ctx context.Context) error {
			id := customer()
			if _, err := db.Customer(ctx, id); err != nil {
				return err
			}
			_, err := db.Transitions(ctx, id)
			return err
		})
		httpCase(round+"/http/timeline", 100, func() string { return "/v1/customers/" + url.PathEscape(customer()) + "/timeline" })
		httpCase(round+"/http/nps_week_1y", 40, func() string { return "/v1/metrics/nps?from=2024-01-01&to=2025-01-01&interval=week" })
		directCase(round+"/direct/nps_week_1y", 40, func(ctx context.Context) error {
			_, err := db.NPS(ctx, from, to, warehouse.Week, warehouse.GroupNone, 10000)
			return err
		})
		httpCase(round+"/http/nps_month_by_stage_1y", 40, func() string {
			return "/v1/metrics/nps?from=2024-01-01&to=2025-01-01&interval=month&group_by=stage"
		})
		httpCase(round+"/http/customers_at_risk", 100, func() string { return "/v1/customers?at_risk=true&limit=50" })
		httpCase(round+"/http/funnel", 40, func() string { return "/v1/metrics/funnel" })
	}
}
