package api_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/services/api"
)

// Every split of up to 6 promoters, 4 passives and 6 detractors gets a day
// of its own; the API (counts from SQL, score from the domain rule) and the
// nps_daily view (score in SQL) must both agree with journey.NPSFromCounts,
// the projector's aggregate, on every day — including all the halves.
func TestNPSAgreesWithTheDomainRuleOnEverySplit(t *testing.T) {
	db := warehousetest.Open(t)
	hs, _, _ := serve(t, db, api.Settings{})
	ctx := t.Context()
	day0 := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	type split struct{ p, pa, d int }
	var splits []split
	for p := 0; p <= 6; p++ {
		for pa := 0; pa <= 4; pa++ {
			for d := 0; d <= 6; d++ {
				if p+pa+d > 0 {
					splits = append(splits, split{p, pa, d})
				}
			}
		}
	}
	b, err := db.Conn.PrepareBatch(ctx, "INSERT INTO satisfaction_responses (customer_id, contact_id, event_id, time, score, category, stream_seq, source)")
	if err != nil {
		t.Fatal(err)
	}
	seq := uint64(0)
	for i, s := range splits {
		day := day0.AddDate(0, 0, i)
		for _, c := range []struct {
			n     int
			cat   string
			score uint8
		}{{s.p, "promoter", 9}, {s.pa, "passive", 7}, {s.d, "detractor", 3}} {
			for k := 0; k < c.n; k++ {
				seq++
				// One customer, one contact per answer: each is a respondent.
				if err := b.Append("grid", fmt.Sprintf("%s-%d", c.cat, k), fmt.Sprintf("e%d", seq), day.Add(time.Hour), c.score, c.cat, seq, "web"); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	to := day0.AddDate(0, 0, len(splits))
	var rep api.NPSReport
	must200(t, hs.URL, "/v1/metrics/nps?interval=day&from=2020-01-01&to="+to.Format(time.DateOnly), &rep)
	pts := rep.Series[0].Points
	if len(pts) != len(splits) {
		t.Fatalf("%d points for %d days", len(pts), len(splits))
	}
	viewNPS := map[string]int64{}
	rows, err := db.Conn.Query(ctx, "SELECT toString(period), nps FROM nps_daily WHERE dimension = 'all'")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var d string
		var v int64
		if err := rows.Scan(&d, &v); err != nil {
			t.Fatal(err)
		}
		viewNPS[d] = v
	}
	rows.Close()
	for i, s := range splits {
		want := journey.NPSFromCounts(s.p, s.pa, s.d)
		pt := pts[i]
		if pt.NPS == nil || *pt.NPS != int64(want.Value) || int(pt.Respondents) != want.Respondents {
			t.Errorf("%+v: API %+v, rule %d", s, pt, want.Value)
		}
		if v, ok := viewNPS[pt.Period]; !ok || v != int64(want.Value) {
			t.Errorf("%+v: view %d (%v), rule %d", s, v, ok, want.Value)
		}
	}
}
