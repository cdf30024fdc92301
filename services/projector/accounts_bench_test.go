package projector_test

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/services/projector"
)

// b2bJourneys is journeys with the simulator's B2B share: 30 % of the
// customers belong to accounts of two customers with 2-5 contacts each and
// DMU roles (decision maker and buyer always), every event naming the
// account, a contact and its role.
func b2bJourneys(seed uint64, customers int, now time.Time) []touchpoint.Event {
	r := mrand.New(mrand.NewPCG(seed, seed+1))
	roles := []string{"decision_maker", "buyer", "influencer", "user", "gatekeeper"}
	var out []touchpoint.Event
	for c := 0; c < customers; c++ {
		cust := fmt.Sprintf("cust/%d", c)
		var common func() touchpoint.Common
		// Customers 2k and 2k+1 share an account, so that one account's
		// contacts often lie in two partitions.
		if (c/2)%10 < 3 {
			acct, contacts := fmt.Sprintf("acct-%d", c/2), 2+r.IntN(4)
			common = func() touchpoint.Common {
				k := r.IntN(contacts)
				return touchpoint.Common{AccountID: acct, ContactID: fmt.Sprint("p", k), DMURole: roles[k]}
			}
		} else {
			common = func() touchpoint.Common { return touchpoint.Common{} }
		}
		n := 2 + r.IntN(14)
		for i := 0; i < n; i++ {
			d := 1 + r.IntN(700)
			// No expiry, no end of the 30-day gap or 90-day coverage window
			// near the test's clock: runs minutes apart agree.
			for _, edge := range []int{30, 90, 365} {
				if d >= edge-2 && d <= edge+2 {
					d += 5
				}
			}
			at := now.Add(-time.Duration(d)*24*time.Hour + time.Duration(r.IntN(20))*time.Hour).Truncate(time.Second).Add(time.Duration(i) * time.Millisecond)
			cm := common()
			var p touchpoint.Typed
			switch x := r.IntN(20); {
			case x < 8:
				cm.Channel = "web"
				p = touchpoint.Visit{Common: cm}
			case x < 10:
				p = touchpoint.Quote{Common: cm, QuoteID: fmt.Sprint("q", i/3), Status: []string{"sent", "accepted", "rejected"}[r.IntN(3)], Amount: touchpoint.Amount{Cents: 1000}, Currency: "EUR"}
			case x < 15:
				p = touchpoint.Order{Common: cm, OrderID: fmt.Sprint("o", r.IntN(6)), Status: "placed", Amount: touchpoint.Amount{Cents: 2500}, Currency: "EUR"}
			case x < 17:
				p = touchpoint.Survey{Common: cm, SurveyID: "nps", Score: int64(r.IntN(11)), Comment: "ok"}
			default:
				st := "opened"
				if r.IntN(2) == 0 {
					st = "resolved"
				}
				p = touchpoint.Complaint{Common: cm, ComplaintID: fmt.Sprint("k", r.IntN(2)), Status: st, Category: "delivery"}
			}
			e, err := touchpoint.New("test-sim", fmt.Sprintf("%d-%d", c, i), cust, at, p)
			if err != nil {
				panic(err)
			}
			out = append(out, e)
		}
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// BenchmarkDrainAccounts drains the same B2B stream twice in one run, each
// on a broker and database of its own: with the account projection off,
// then on. b.N is ignored beyond 1; run with -count 3 for medians.
// JOURNEY_BENCH_ACCOUNT_CUSTOMERS sets the customers (default 10000, about
// 85 k events, 3 000 accounts).
func BenchmarkDrainAccounts(b *testing.B) {
	customers := 10000
	if n, _ := strconv.Atoi(os.Getenv("JOURNEY_BENCH_ACCOUNT_CUSTOMERS")); n > 0 {
		customers = n
	}
	now := time.Now().UTC()
	events := b2bJourneys(5, customers, now)
	rates := map[bool]float64{}
	for _, on := range []bool{false, true} {
		br := freshStreams(b)
		publish(b, br.js, events)
		cfg := br.migratedConfig(b)
		cfg.Projector.BatchSize, cfg.Projector.WarehouseWait, cfg.Projector.CacheSize = 10000, time.Second, 200_000
		cfg.Projector.Accounts = projector.AccountSettings{Enabled: on, Bucket: randName("acct_"),
			CoverageWindow: 90 * journey.Day, GapWindow: 30 * journey.Day}
		t0 := time.Now()
		stop := start(b, cfg)
		waitDrained(b, br.js, cfg.Projector.Durable, 30*time.Minute)
		d := time.Since(t0)
		waitWarehouse(b, br.js, cfg, 30*time.Minute)
		wh := time.Since(t0)
		stop()
		rates[on] = float64(len(events)) / d.Seconds()
		b.Logf("accounts %v: %d events over %d customers drained in %s (%.0f events/s), rows in ClickHouse after %s",
			on, len(events), customers, d, rates[on], wh)
		b.Logf("accounts %v: stored per event: %s", on, storedPerEvent(b, br.js, cfg, len(events)))
		if on {
			st, err := br.js.Stream(context.Background(), "KV_"+cfg.Projector.Accounts.Bucket)
			if err != nil {
				b.Fatal(err)
			}
			b.Logf("accounts true: account records and contact entries stored per event: %.3f",
				float64(st.CachedInfo().State.LastSeq)/float64(len(events)))
		}
	}
	b.ReportMetric(rates[false], "off-events/s")
	b.ReportMetric(rates[true], "on-events/s")
	b.ReportMetric(rates[true]/rates[false], "on/off")
}
