package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/envdoc"
	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/services/api"
)

func TestMain(m *testing.M) { os.Exit(warehousetest.Main(m)) }

func get(t *testing.T, base, path string, out any) (int, http.Header) {
	t.Helper()
	res, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("GET %s: %d %s: %v", path, res.StatusCode, body, err)
		}
	}
	return res.StatusCode, res.Header
}

func must200(t *testing.T, base, path string, out any) {
	t.Helper()
	if code, _ := get(t, base, path, out); code != 200 {
		t.Fatalf("GET %s: status %d", path, code)
	}
}

type point struct {
	Period                                       string
	Promoters, Passives, Detractors, Respondents uint64
	NPS                                          *int64
}

func p(period string, pr, pa, d uint64, nps *int64) point {
	return point{period, pr, pa, d, pr + pa + d, nps}
}

func n(v int64) *int64 { return &v }

func points(rep api.NPSReport, group string) []point {
	for _, s := range rep.Series {
		if s.Group == group {
			var out []point
			for _, x := range s.Points {
				out = append(out, point{x.Period, x.Promoters, x.Passives, x.Detractors, x.Respondents, x.NPS})
			}
			return out
		}
	}
	return nil
}

func TestNPSByHand(t *testing.T) {
	hs, _, _ := newServer(t, api.Settings{})
	var rep api.NPSReport
	must200(t, hs.URL, "/v1/metrics/nps?from=2024-01-01&to=2024-02-12&interval=week", &rep)
	// Week of Jan 1: c1's latest answer that week is the 6 (detractor), c2
	// answers as three respondents (contacts k1 passive, k2 promoter, and
	// without contact a detractor), c4's replayed promoter counts once:
	// P=2 Pa=1 D=2 -> 0. Week of Jan 15: c1 promoter (10), c3 passive -> 50.
	// Week of Feb 5: c5 detractor -> -100. Other weeks: no respondents, null.
	want := []point{
		p("2024-01-01", 2, 1, 2, n(0)),
		p("2024-01-08", 0, 0, 0, nil),
		p("2024-01-15", 1, 1, 0, n(50)),
		p("2024-01-22", 0, 0, 0, nil),
		p("2024-01-29", 0, 0, 0, nil),
		p("2024-02-05", 1-1, 0, 1, n(-100)),
	}
	if got := points(rep, ""); !reflect.DeepEqual(got, want) {
		t.Errorf("weekly:\n got %+v\nwant %+v", got, want)
	}

	must200(t, hs.URL, "/v1/metrics/nps?from=2024-01-01&to=2024-03-01&interval=month", &rep)
	// January: c1's latest is the 10 (promoter), k1 passive, k2 promoter,
	// c2 detractor, c3 passive, c4 promoter: P=3 Pa=2 D=1, 100*2/6 = 33.3 -> 33.
	want = []point{p("2024-01-01", 3, 2, 1, n(33)), p("2024-02-01", 0, 0, 1, n(-100))}
	if got := points(rep, ""); !reflect.DeepEqual(got, want) {
		t.Errorf("monthly:\n got %+v\nwant %+v", got, want)
	}

	must200(t, hs.URL, "/v1/metrics/nps?from=2024-01-01&to=2024-02-01&interval=month&group_by=source", &rep)
	// January by the source of each respondent's latest answer: web = c1 P +
	// c3 Pa -> 50; app = c2's three -> 0; email = c4 -> 100.
	bySource := map[string][]point{
		"app":   {p("2024-01-01", 1, 1, 1, n(0))},
		"email": {p("2024-01-01", 1, 0, 0, n(100))},
		"web":   {p("2024-01-01", 1, 1, 0, n(50))},
	}
	if len(rep.Series) != 3 || rep.GroupBy == nil || *rep.GroupBy != "source" {
		t.Fatalf("by source: %+v", rep)
	}
	for g, w := range bySource {
		if got := points(rep, g); !reflect.DeepEqual(got, w) {
			t.Errorf("source %s:\n got %+v\nwant %+v", g, got, w)
		}
	}

	must200(t, hs.URL, "/v1/metrics/nps?from=2024-01-01&to=2024-02-01&interval=month&group_by=stage", &rep)
	// By the stage recorded on the latest answer: c1 answered last as a
	// new_customer (P), c3 new_customer (Pa); prospects: k1 Pa, k2 P, c2 D, c4 P.
	if got := points(rep, "new_customer"); !reflect.DeepEqual(got, []point{p("2024-01-01", 1, 1, 0, n(50))}) {
		t.Errorf("stage new_customer: %+v", got)
	}
	if got := points(rep, "prospect"); !reflect.DeepEqual(got, []point{p("2024-01-01", 2, 1, 1, n(25))}) {
		t.Errorf("stage prospect: %+v", got)
	}

}

// Halves round away from zero on every server: 12.5 -> 13, -12.5 -> -13,
// and the textbook's 25 % / 55 % / 20 % -> +5.
func TestNPSRoundsHalfAwayFromZero(t *testing.T) {
	hs, _, db := newServer(t, api.Settings{})
	ctx := t.Context()
	b, err := db.Conn.PrepareBatch(ctx, "INSERT INTO satisfaction_responses (customer_id, event_id, time, score, category, stream_seq, source)")
	if err != nil {
		t.Fatal(err)
	}
	add := func(day string, cat string, count int) {
		for i := 0; i < count; i++ {
			id := day + "-" + cat + "-" + string(rune('a'+i))
			if err := b.Append("r-"+id, "e-"+id, at(day+" 12:00"), uint8(5), cat, uint64(1000+i), "web"); err != nil {
				t.Fatal(err)
			}
		}
	}
	add("2024-03-04", "promoter", 3)
	add("2024-03-04", "passive", 3)
	add("2024-03-04", "detractor", 2)
	add("2024-03-05", "promoter", 2)
	add("2024-03-05", "passive", 3)
	add("2024-03-05", "detractor", 3)
	add("2024-03-06", "promoter", 5)
	add("2024-03-06", "passive", 11)
	add("2024-03-06", "detractor", 4)
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	var rep api.NPSReport
	must200(t, hs.URL, "/v1/metrics/nps?from=2024-03-04&to=2024-03-07&interval=day", &rep)
	want := []point{p("2024-03-04", 3, 3, 2, n(13)), p("2024-03-05", 2, 3, 3, n(-13)), p("2024-03-06", 5, 11, 4, n(5))}
	if got := points(rep, ""); !reflect.DeepEqual(got, want) {
		t.Errorf("\n got %+v\nwant %+v", got, want)
	}
	// The nps_daily view uses the same arithmetic.
	rows, err := db.Conn.Query(ctx, "SELECT toString(period), nps FROM nps_daily WHERE dimension = 'all' AND period >= '2024-03-04' ORDER BY period")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var d string
		var v int64
		if err := rows.Scan(&d, &v); err != nil {
			t.Fatal(err)
		}
		got = append(got, d+"="+itoa(v))
	}
	rows.Close()
	if strings.Join(got, " ") != "2024-03-04=13 2024-03-05=-13 2024-03-06=5" {
		t.Errorf("nps_daily: %v", got)
	}
}

func itoa(v int64) string { b, _ := json.Marshal(v); return string(b) }

func TestFunnelByHand(t *testing.T) {
	hs, _, _ := newServer(t, api.Settings{})
	var rep api.FunnelReport
	must200(t, hs.URL, "/v1/metrics/funnel", &rep)
	day := 86400.0
	loyal := at("2024-06-01 10:00").Sub(at("2024-01-05 10:00")).Seconds()
	// Market->Sales: visits c1 c2 c3 c4 = 4, quotes c1 (2d) c2 (2d) c3 (1d)
	// = 3, median 2d. Sales->Order: quotes 3, orders c1 (2d) c3 (6d) = 2,
	// median (2d+6d)/2 = 4d. Order->loyal: orders c1 c3 c5 = 3, loyal c1.
	// c4's version 1 (with an order) is replaced by version 2 (none).
	want := []api.ProcessJSON{
		{Process: "market_to_sales", FromMilestone: "first_visit", ToMilestone: "first_quote", Entered: 4, Converted: 3, ConversionRate: f(0.75), MedianSeconds: f(2 * day)},
		{Process: "sales_to_order", FromMilestone: "first_quote", ToMilestone: "first_order", Entered: 3, Converted: 2, ConversionRate: f(2.0 / 3), MedianSeconds: f(4 * day)},
		{Process: "order_to_loyal", FromMilestone: "first_order", ToMilestone: "first_loyal", Entered: 3, Converted: 1, ConversionRate: f(1.0 / 3), MedianSeconds: f(loyal)},
	}
	if !reflect.DeepEqual(rep.Processes, want) {
		t.Errorf("all time:\n got %s\nwant %s", js(rep.Processes), js(want))
	}
	must200(t, hs.URL, "/v1/metrics/funnel?from=2024-01-01&to=2024-02-01", &rep)
	// Only first milestones in January: c5's 2023 order drops out.
	if e, c := rep.Processes[2].Entered, rep.Processes[2].Converted; e != 2 || c != 1 {
		t.Errorf("january order_to_loyal entered %d converted %d, want 2 1", e, c)
	}
	must200(t, hs.URL, "/v1/metrics/funnel?from=2025-01-01&to=2025-02-01", &rep)
	for _, p := range rep.Processes {
		if p.Entered != 0 || p.ConversionRate != nil || p.MedianSeconds != nil {
			t.Errorf("empty period: %+v", p)
		}
	}
}

func f(v float64) *float64 { return &v }

func js(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestLifecycleByHand(t *testing.T) {
	hs, _, _ := newServer(t, api.Settings{})
	var rep api.LifecycleReport
	must200(t, hs.URL, "/v1/metrics/lifecycle?from=2024-01-01&to=2024-02-01", &rep)
	// Now: c2 c4 prospects (c4's newest state), c3 new, c1 loyal, c5 ex.
	if want := map[string]uint64{"prospect": 2, "new_customer": 1, "loyal_customer": 1, "ex_customer": 1}; !reflect.DeepEqual(rep.Current, want) {
		t.Errorf("current %v want %v", rep.Current, want)
	}
	// Before Jan 1 only c5 existed (new_customer since 2023).
	if want := map[string]uint64{"prospect": 0, "new_customer": 1, "loyal_customer": 0, "ex_customer": 0}; !reflect.DeepEqual(rep.AtFrom, want) {
		t.Errorf("at_from %v want %v", rep.AtFrom, want)
	}
	// End of January: c2 c4 prospects (c4's invalid transition ignored),
	// c1 c3 new customers, c5 ex.
	if want := map[string]uint64{"prospect": 2, "new_customer": 2, "loyal_customer": 0, "ex_customer": 1}; !reflect.DeepEqual(rep.AtTo, want) {
		t.Errorf("at_to %v want %v", rep.AtTo, want)
	}
	want := []api.FlowJSON{{From: "new_customer", To: "ex_customer", Transitions: 1}, {From: "none", To: "prospect", Transitions: 4}, {From: "prospect", To: "new_customer", Transitions: 2}}
	if !reflect.DeepEqual(rep.Flows, want) {
		t.Errorf("flows %+v want %+v", rep.Flows, want)
	}
}

func TestCustomerStateAndExplain(t *testing.T) {
	hs, _, _ := newServer(t, api.Settings{})
	var c api.CustomerJSON
	must200(t, hs.URL, "/v1/customers/"+url.PathEscape(c1), &c)
	if c.Stage != "loyal_customer" || c.Counts.CountedOrders != 3 || c.AtRisk || *c.Satisfaction.Score != 10 || c.AccountID != "acme" {
		t.Errorf("state: %s", js(c))
	}
	if c.Explain == nil || len(c.Explain.Transitions) != 3 || c.Explain.RulesVersion != "r1" {
		t.Fatalf("explain: %s", js(c.Explain))
	}
	last := c.Explain.Transitions[2]
	if last.To != "loyal_customer" || last.Reason != "repeat_orders" || !reflect.DeepEqual(last.CauseEventIDs, []string{"e-c1-o1", "e-c1-o2", "e-c1-o3"}) {
		t.Errorf("last transition: %+v", last)
	}
	// c4: the newer state wins and the invalidated transition is gone.
	must200(t, hs.URL, "/v1/customers/"+c4, &c)
	if c.Stage != "prospect" || c.Version != 2 || len(c.Explain.Transitions) != 1 || c.Milestones.FirstOrder != nil {
		t.Errorf("c4: %s", js(c))
	}
	var prob api.Problem
	code, h := get(t, hs.URL, "/v1/customers/nobody", &prob)
	if code != 404 || h.Get("Content-Type") != "application/problem+json" || prob.Status != 404 {
		t.Errorf("unknown customer: %d %s %+v", code, h.Get("Content-Type"), prob)
	}
}

func TestInjectionStringsRoundTripOrAreRejected(t *testing.T) {
	hs, _, db := newServer(t, api.Settings{})
	var c api.CustomerJSON
	must200(t, hs.URL, "/v1/customers/"+url.PathEscape(c3), &c)
	if c.CustomerID != c3 || c.Stage != "new_customer" || c.AccountID != "it's" {
		t.Fatalf("c3 did not round-trip: %s", js(c))
	}
	var tl api.TimelinePage
	must200(t, hs.URL, "/v1/customers/"+url.PathEscape(c3)+"/timeline", &tl)
	if tl.CustomerID != c3 || len(tl.Items) != 5 {
		t.Errorf("c3 timeline: %s", js(tl))
	}
	var page api.CustomerPage
	must200(t, hs.URL, "/v1/customers?account="+url.QueryEscape("it's"), &page)
	if len(page.Items) != 1 || page.Items[0].CustomerID != c3 {
		t.Errorf("account filter with a quote: %s", js(page))
	}
	for _, id := range []string{"' OR 1=1 --", `\'`, "?", "$1", "{x:String}", "`", "a%2Fb"} {
		code, _ := get(t, hs.URL, "/v1/customers/"+url.PathEscape(id), nil)
		if code != 404 {
			t.Errorf("id %q: status %d, want 404", id, code)
		}
		must200(t, hs.URL, "/v1/customers?account="+url.QueryEscape(id), &page)
		if len(page.Items) != 0 {
			t.Errorf("account %q matched %d customers", id, len(page.Items))
		}
	}
	// Rejected cleanly, naming the parameter.
	for path, param := range map[string]string{
		"/v1/customers/" + url.PathEscape("a\x00b"):                               "id",
		"/v1/customers/" + strings.Repeat("x", 129):                               "id",
		"/v1/customers?stage=" + url.QueryEscape("x' OR 1=1"):                     "stage",
		"/v1/customers?at_risk=maybe":                                             "at_risk",
		"/v1/customers?limit=100000":                                              "limit",
		"/v1/customers?cursor=" + url.QueryEscape("'; --"):                        "cursor",
		"/v1/customers?stgae=prospect":                                            "stgae",
		"/v1/metrics/nps?group_by=" + url.QueryEscape("stage; DROP TABLE events"): "group_by",
		"/v1/metrics/nps?interval=" + url.QueryEscape("toDate(now())"):            "interval",
		"/v1/metrics/nps?from=" + url.QueryEscape("2024-01-01' --"):               "from",
		"/v1/metrics/nps?from=2020-01-01&to=2024-01-01&interval=day":              "from",
		"/v1/metrics/funnel?from=2024-02-01&to=2024-01-01":                        "from",
		"/v1/customers/c1/timeline?cursor=bm9wZQ":                                 "cursor",
	} {
		var prob api.Problem
		code, h := get(t, hs.URL, path, &prob)
		if code != 400 || h.Get("Content-Type") != "application/problem+json" || len(prob.InvalidParams) == 0 || prob.InvalidParams[0].Name != param {
			t.Errorf("%s: %d %s %+v, want 400 naming %s", path, code, h.Get("Content-Type"), prob, param)
		}
	}
	// And nothing was harmed.
	var count uint64
	if err := db.Conn.QueryRow(t.Context(), "SELECT count() FROM events").Scan(&count); err != nil || count != uint64(len(events)) {
		t.Errorf("events: %d, %v", count, err)
	}
}

func TestTimelinePagesInOrderWithStageChanges(t *testing.T) {
	hs, _, _ := newServer(t, api.Settings{})
	var all []api.TimelineItem
	cursor := ""
	pages := 0
	for {
		var pg api.TimelinePage
		path := "/v1/customers/" + c1 + "/timeline?limit=3"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		must200(t, hs.URL, path, &pg)
		all = append(all, pg.Items...)
		pages++
		if pg.NextCursor == nil {
			break
		}
		cursor = *pg.NextCursor
		if pages > 10 {
			t.Fatal("no end of pages")
		}
	}
	// 8 touchpoints in pages of 3 -> 3 pages; the 3 transitions each once,
	// right after the event that caused them, even where the transition's
	// time has fewer digits than its event (the visit at 10:00:00.250).
	var seq []string
	for _, it := range all {
		if it.Touchpoint != nil {
			seq = append(seq, it.Touchpoint.ID)
		} else {
			seq = append(seq, "->"+it.StageChange.To)
		}
	}
	want := "e-c1-visit ->prospect e-c1-survey1 e-c1-quote e-c1-survey2 e-c1-o1 ->new_customer e-c1-survey3 e-c1-o2 e-c1-o3 ->loyal_customer"
	if got := strings.Join(seq, " "); got != want || pages != 3 {
		t.Errorf("timeline in %d pages:\n got %s\nwant %s", pages, got, want)
	}
	for i := 1; i < len(all); i++ {
		if all[i].At.Before(all[i-1].At.Truncate(time.Second)) {
			t.Errorf("item %d goes back in time", i)
		}
	}
}

func TestCustomerListFiltersAndPages(t *testing.T) {
	hs, _, _ := newServer(t, api.Settings{})
	ids := func(pg api.CustomerPage) []string {
		var out []string
		for _, c := range pg.Items {
			out = append(out, c.CustomerID)
		}
		return out
	}
	var pg api.CustomerPage
	var got []string
	path := "/v1/customers?limit=2"
	for i := 0; ; i++ {
		must200(t, hs.URL, path, &pg)
		got = append(got, ids(pg)...)
		if pg.NextCursor == nil {
			break
		}
		path = "/v1/customers?limit=2&cursor=" + url.QueryEscape(*pg.NextCursor)
	}
	if want := []string{c1, c2, c3, c4, c5}; !reflect.DeepEqual(got, want) {
		t.Errorf("pages: %q", got)
	}
	for q, want := range map[string][]string{
		"at_risk=true":                   {c2, c5},
		"at_risk=false":                  {c1, c3, c4},
		"stage=prospect":                 {c2, c4},
		"stage=new_customer":             {c3},
		"stage=prospect&account=bobco":   {c2},
		"stage=loyal_customer&at_risk=1": nil,
	} {
		must200(t, hs.URL, "/v1/customers?"+q, &pg)
		if g := ids(pg); !reflect.DeepEqual(g, want) {
			t.Errorf("%s: %q want %q", q, g, want)
		}
	}
}

func TestBearerAuth(t *testing.T) {
	hs, _, _ := newServer(t, api.Settings{Tokens: []string{"s3cret-read-token"}})
	req := func(path, auth string) (int, http.Header) {
		r, _ := http.NewRequest("GET", hs.URL+path, nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		res, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode, res.Header
	}
	if code, h := req("/v1/customers/"+c1, ""); code != 401 || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("no token: %d %v", code, h)
	}
	if code, _ := req("/v1/customers/"+c1, "Bearer wrong"); code != 401 {
		t.Errorf("wrong token: %d", code)
	}
	if code, _ := req("/v1/customers/"+c1, "Bearer s3cret-read-token"); code != 200 {
		t.Errorf("right token: %d", code)
	}
	if code, h := req("/", ""); code != 401 || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("dashboard without token: %d %v", code, h)
	}
	r, _ := http.NewRequest("GET", hs.URL+"/", nil)
	r.SetBasicAuth("anyone", "s3cret-read-token")
	res, err := http.DefaultClient.Do(r)
	if err != nil || res.StatusCode != 200 {
		t.Errorf("dashboard with basic auth: %v %v", res.StatusCode, err)
	}
	res.Body.Close()
	for _, open := range []string{"/healthz", "/readyz", "/metrics", "/openapi.yaml", "/assets/style.css"} {
		if code, _ := req(open, ""); code != 200 {
			t.Errorf("%s: %d without token", open, code)
		}
	}
}

func TestConfigDocumented(t *testing.T) {
	_, doc, err := envdoc.FindDoc()
	if err != nil {
		t.Fatal(err)
	}
	missing, err := envdoc.Missing(&api.Config{}, doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		vars, _ := envdoc.Vars(&api.Config{})
		t.Errorf("docs/configuration.md lacks %v; the api table:\n%s", missing, envdoc.Table(vars))
	}
}

// A request that outlives QUERY_TIMEOUT is a 504 problem, not a hang or a 500.
func TestQueryTimeoutIs504(t *testing.T) {
	hs, _, _ := newServer(t, api.Settings{QueryTimeout: time.Nanosecond})
	var prob api.Problem
	code, h := get(t, hs.URL, "/v1/metrics/nps?from=2024-01-01&to=2024-02-01", &prob)
	if code != 504 || h.Get("Content-Type") != "application/problem+json" || prob.Status != 504 {
		t.Errorf("got %d %s %+v", code, h.Get("Content-Type"), prob)
	}
}
