package api_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/warehouse"
)

// rowsOf runs q and renders each row as its columns joined by "|", so a
// test can compare with hand-written expectations.
func rowsOf(t *testing.T, db *warehouse.DB, q string) []string {
	t.Helper()
	rows, err := db.Conn.Query(t.Context(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// The BI views give the hand-computed numbers of the same data set.
func TestViewsByHand(t *testing.T) {
	db := warehousetest.Open(t)
	loadFixture(t, db)
	cases := []struct {
		name string
		q    string
		want []string
	}{
		{"nps_weekly", `SELECT concat(toString(period), '|', toString(promoters), '|', toString(passives), '|', toString(detractors), '|', toString(respondents), '|', toString(nps))
			FROM nps_weekly WHERE dimension = 'all' ORDER BY period`,
			[]string{"2024-01-01|2|1|2|5|0", "2024-01-15|1|1|0|2|50", "2024-02-05|0|0|1|1|-100"}},
		{"nps_monthly by source", `SELECT concat(value, '|', toString(respondents), '|', toString(nps))
			FROM nps_monthly WHERE dimension = 'source' AND period = '2024-01-01' ORDER BY value`,
			[]string{"app|3|0", "email|1|100", "web|2|50"}},
		{"nps_daily by account", `SELECT concat(value, '|', toString(respondents), '|', toString(nps))
			FROM nps_daily WHERE dimension = 'account' AND period = '2024-01-04' ORDER BY value`,
			[]string{"bobco|2|50"}}, // k1 passive, k2 promoter
		{"funnel", `SELECT concat(process, '|', toString(entered), '|', toString(converted), '|', toString(round(conversion_rate, 4)), '|', toString(median_seconds))
			FROM funnel ORDER BY step`,
			[]string{"market_to_sales|4|3|0.75|172800", "sales_to_order|3|2|0.6667|345600",
				fmt.Sprintf("order_to_loyal|3|1|0.3333|%d", int64(at("2024-06-01 10:00").Sub(at("2024-01-05 10:00")).Seconds()))}},
		{"stage_distribution", `SELECT concat(stage, '|', toString(customers)) FROM stage_distribution ORDER BY stage`,
			[]string{"ex_customer|1", "loyal_customer|1", "new_customer|1", "prospect|2"}},
		{"stage_distribution_daily", `SELECT concat(stage, '|', toString(customers)) FROM stage_distribution_daily WHERE day = '2024-01-31' ORDER BY stage`,
			[]string{"ex_customer|1", "loyal_customer|0", "new_customer|2", "prospect|2"}},
		{"stage_distribution_daily first day", `SELECT concat(toString(min(day)), '|', toString(max(day) >= today())) FROM stage_distribution_daily`,
			[]string{"2023-01-01|1"}},
		{"stage_flows_daily", `SELECT concat(toString(day), '|', from_stage, '|', to_stage, '|', toString(transitions)) FROM stage_flows_daily WHERE day = '2024-01-01' ORDER BY from_stage`,
			[]string{"2024-01-01|new_customer|ex_customer|1", "2024-01-01|none|prospect|2"}},
		{"stage_transitions_valid", `SELECT concat(customer_id, '|', toString(count())) FROM stage_transitions_valid WHERE customer_id = 'c4-dora' GROUP BY customer_id`,
			[]string{"c4-dora|1"}},
		{"customers_current", `SELECT concat(customer_id, '|', stage, '|', toString(version)) FROM customers_current WHERE customer_id = 'c4-dora'`,
			[]string{"c4-dora|prospect|2"}},
		{"touchpoints_daily", `SELECT concat(toString(day), '|', kind, '|', source, '|', toString(touchpoints), '|', toString(customers)) FROM touchpoints_daily WHERE day = '2024-01-01' ORDER BY kind`,
			[]string{"2024-01-01|visit|web|2|2"}},
		{"open_complaints", `SELECT concat(customer_id, '|', complaint_id, '|', toString(opened_at)) FROM open_complaints`,
			[]string{"c2-bob|k-1|2024-01-10 11:00:00"}},
		{"at_risk_customers", `SELECT customer_id FROM at_risk_customers ORDER BY customer_id`,
			[]string{"c2-bob", "c5-emil"}},
	}
	for _, c := range cases {
		got := rowsOf(t, db, c.q)
		for i := range got {
			// DateTime64 renders milliseconds on current servers.
			got[i] = strings.TrimSuffix(got[i], ".000")
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}
}
