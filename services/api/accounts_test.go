package api_test

import (
	"encoding/json"
	"html"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/account"
	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
	"github.com/klantreis/journey/services/api"
)

// accountNow is the "now" of the account fixture's views.
var accountNow = at("2024-06-10 12:00:00.000")

// accountRoles gives the fixture's customers a DMU role; dora is an extra
// decision maker of acme, last seen long ago.
var accountRoles = map[string]string{c1: account.RoleBuyer, c2: account.RoleDecisionMaker, c3: account.RoleInfluencer}

// loadAccountFixture derives the accounts of the fixture's events with the
// account rules and writes them as the projector would: acme (loyal, an
// open quote and no decision maker engaged lately: a gap), bobco (an open
// complaint: at risk, and a gap), it's (new_customer, a gap).
func loadAccountFixture(t testing.TB, db *warehouse.DB) map[string]account.View {
	t.Helper()
	rules, err := account.New(account.DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]*account.State{}
	apply := func(e account.Event) {
		if e.AccountID == "" {
			return // no account's
		}
		s := states[e.AccountID]
		if s == nil {
			s = account.NewState(e.AccountID)
			states[e.AccountID] = s
		}
		rules.Apply(s, accountNow, []account.Event{e}, nil)
	}
	for _, e := range events {
		ae := account.Event{CustomerID: e.customer, Event: journey.Event{Source: e.source, ID: e.id, Time: at(e.time),
			Kind: touchpoint.Kind(e.kind), Status: e.status, OrderID: e.order, ComplaintID: e.complaint, QuoteID: e.quote,
			AccountID: e.account, ContactID: e.contact, DMURole: accountRoles[e.customer]}}
		if e.score != nil {
			ae.Score = int(*e.score)
		}
		apply(ae)
	}
	apply(account.Event{CustomerID: c1, Event: journey.Event{Source: "crm", ID: "e-acme-dora", Time: at("2024-02-01 09:00:00.000"),
		Kind: touchpoint.KindVisit, AccountID: "acme", ContactID: "dora", DMURole: account.RoleDecisionMaker}})
	views := map[string]account.View{}
	var rows []warehouse.AccountStateRow
	var trs []warehouse.AccountTransitionRow
	for id, s := range states {
		v := rules.View(s, accountNow)
		views[id] = v
		b, _ := json.Marshal(v)
		r := warehouse.AccountStateRow{AccountID: id, Version: 1, UpdatedAt: accountNow, Stage: string(v.Stage), StageSince: v.StageSince,
			AtRisk: v.AtRisk, AtRiskReasons: v.AtRiskReasons, Gap: v.Gap, OpenQuotes: v.OpenQuotes, Coverage: v.Coverage,
			Uncovered: v.Uncovered, Members: uint32(len(v.Members)), FormerMembers: uint32(v.Former),
			Respondents: uint32(v.NPS.Respondents), Promoters: uint32(v.NPS.Promoters), Passives: uint32(v.NPS.Passives),
			Detractors: uint32(v.NPS.Detractors), OpenComplaints: uint32(v.OpenComplaints), LastTouch: v.LastTouch,
			RulesVersion: v.RulesVersion, View: string(b)}
		if v.NPS.OK {
			n := int16(v.NPS.Value)
			r.NPS = &n
		}
		rows = append(rows, r)
		for i, h := range v.History {
			trs = append(trs, warehouse.AccountTransitionRow{AccountID: id, Idx: uint32(i), Version: 1, Valid: true,
				From: string(h.From), To: string(h.To), At: h.At, Reason: string(h.Reason), CauseEventIDs: h.Causes, RulesVersion: h.RulesVersion})
		}
	}
	warehousetest.Must(t, db.WriteAccounts(t.Context(), rows, trs), "write accounts")
	return views
}

func TestAccountsAPI(t *testing.T) {
	hs, _, db := newServer(t, api.Settings{})
	views := loadAccountFixture(t, db)
	for id, v := range views {
		var a api.AccountJSON
		must200(t, hs.URL, "/v1/accounts/"+url.PathEscape(id), &a)
		if a.Stage != string(v.Stage) || a.Gap != v.Gap || a.AtRisk != v.AtRisk || len(a.Members) != len(v.Members) ||
			len(a.Explain.Transitions) != len(v.History) || !reflect.DeepEqual(a.Coverage, v.Coverage) {
			t.Errorf("%s: API %+v, rules %+v", id, a, v)
		}
	}
	var acme api.AccountJSON
	must200(t, hs.URL, "/v1/accounts/acme", &acme)
	if acme.Stage != "loyal_customer" || !acme.Gap || acme.AtRisk || acme.Members[0].ContactID != "dora" || acme.Members[0].Engaged {
		t.Errorf("acme %+v: want loyal, a gap (dora not engaged since February), not at risk", acme)
	}
	var bob api.AccountJSON
	must200(t, hs.URL, "/v1/accounts/bobco", &bob)
	if !bob.AtRisk || !reflect.DeepEqual(bob.AtRiskReasons, []string{"open_complaint"}) || bob.Stage != "prospect" {
		t.Errorf("bobco %+v, want a prospect at risk for its open complaint", bob)
	}
	for q, want := range map[string]string{"at_risk=1": "bobco", "stage=loyal_customer": "acme", "gap=true": "acme,bobco,it's",
		"gap=true&limit=1": "acme", "gap=true&limit=1&cursor=" + url.QueryEscape(pageCursor(t, hs.URL, "/v1/accounts?gap=true&limit=1")): "bobco"} {
		var page api.AccountPage
		must200(t, hs.URL, "/v1/accounts?"+q, &page)
		var ids []string
		for _, a := range page.Items {
			ids = append(ids, a.AccountID)
			if a.Members != nil || a.Explain != nil {
				t.Errorf("%s: the list carries members or explain", q)
			}
		}
		if strings.Join(ids, ",") != want {
			t.Errorf("/v1/accounts?%s = %v, want %s", q, ids, want)
		}
	}
	for _, bad := range []string{"stage=gold", "gap=perhaps", "at_risk=2", "limit=0", "colour=red"} {
		if code, _ := get(t, hs.URL, "/v1/accounts?"+bad, nil); code != 400 {
			t.Errorf("/v1/accounts?%s: %d, want 400", bad, code)
		}
	}
	if code, _ := get(t, hs.URL, "/v1/accounts/nobody", nil); code != 404 {
		t.Errorf("unknown account: %d, want 404", code)
	}
}

func pageCursor(t *testing.T, base, path string) string {
	var page api.AccountPage
	must200(t, base, path, &page)
	if page.NextCursor == nil {
		t.Fatalf("%s: no next cursor", path)
	}
	return *page.NextCursor
}

var (
	accountStageRE = regexp.MustCompile(`data-testid="account-stage" data-stage="([a-z_]+)"`)
	memberRE       = regexp.MustCompile(`data-testid="member-row" data-contact="([^"]*)" data-role="([a-z_]*)"`)
	roleRE         = regexp.MustCompile(`data-testid="role" data-role="([a-z_]+)" data-covered="(true|false)"`)
	gapRE          = regexp.MustCompile(`data-testid="account-gap" data-gap="(true|false)"`)
	acctCountRE    = regexp.MustCompile(`data-testid="account-stage-count" data-stage="([a-z_]+)">(\d+)<`)
	watchRE        = regexp.MustCompile(`data-testid="account-watch-row" data-account="([^"]+)"`)
)

// The account page and the overview's account card, as a person sees them
// in headless Chromium, show what the API says.
func TestAccountDashboardInChromium(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium is required in CI (%v); make test installs it", err)
		}
		t.Skipf("skipping: %s not installed (make test installs it)", chromiumPath)
	}
	const tok = "browser-read-token"
	srv, _, db := newServer(t, api.Settings{Tokens: []string{tok}})
	loadAccountFixture(t, db)
	page := func(path string) string { return srv.URL + "/login?token=" + tok + "&next=" + url.QueryEscape(path) }
	hs := strings.Replace(srv.URL, "http://", "http://reader:"+tok+"@", 1)

	var acme api.AccountJSON
	must200(t, hs, "/v1/accounts/acme", &acme)
	dom := chromium(t, "--dump-dom", page("/accounts/acme"))
	if m := accountStageRE.FindStringSubmatch(dom); m == nil || m[1] != acme.Stage {
		t.Errorf("account page stage %v, API %s", m, acme.Stage)
	}
	var shown, want []string
	for _, m := range memberRE.FindAllStringSubmatch(dom, -1) {
		shown = append(shown, html.UnescapeString(m[1])+":"+m[2])
	}
	for _, m := range acme.Members {
		want = append(want, m.ContactID+":"+m.Role)
	}
	if strings.Join(shown, ",") != strings.Join(want, ",") || len(want) != 2 {
		t.Errorf("members by role: page %v, API %v", shown, want)
	}
	var covered, uncovered []string
	for _, m := range roleRE.FindAllStringSubmatch(dom, -1) {
		if m[2] == "true" {
			covered = append(covered, m[1])
		} else {
			uncovered = append(uncovered, m[1])
		}
	}
	if !reflect.DeepEqual(covered, acme.Coverage) || !reflect.DeepEqual(uncovered, acme.Uncovered) {
		t.Errorf("coverage: page %v / %v, API %v / %v", covered, uncovered, acme.Coverage, acme.Uncovered)
	}
	if m := gapRE.FindStringSubmatch(dom); m == nil || m[1] != "true" || !acme.Gap {
		t.Errorf("gap: page %v, API %v", m, acme.Gap)
	}
	var tos, apiTos []string
	for _, m := range transRE.FindAllStringSubmatch(dom, -1) {
		tos = append(tos, m[1])
	}
	for _, x := range acme.Explain.Transitions {
		apiTos = append(apiTos, x.To)
	}
	if strings.Join(tos, ",") != strings.Join(apiTos, ",") {
		t.Errorf("why this stage: page %v, API %v", tos, apiTos)
	}
	var kinds []string
	for _, m := range timelineRE.FindAllStringSubmatch(dom, -1) {
		kinds = append(kinds, m[1])
	}
	// acme's 8 stored touchpoints and its 3 stage changes.
	if len(kinds) != 11 || strings.Count(strings.Join(kinds, ","), "stage_change") != 3 {
		t.Errorf("account timeline items: %v", kinds)
	}

	odom := chromium(t, "--dump-dom", page("/?from=2024-01-01&to=2024-02-12&interval=week"))
	var all api.AccountPage
	must200(t, hs, "/v1/accounts", &all)
	perStage := map[string]string{}
	for _, a := range all.Items {
		perStage[a.Stage] += "x"
	}
	counts := acctCountRE.FindAllStringSubmatch(odom, -1)
	if len(counts) != 4 {
		t.Errorf("overview shows %d account stages, want 4", len(counts))
	}
	for _, m := range counts {
		if want := len(perStage[m[1]]); m[2] != strconv.Itoa(want) {
			t.Errorf("overview accounts in %s: page %s, API %d", m[1], m[2], want)
		}
	}
	var watch []string
	for _, m := range watchRE.FindAllStringSubmatch(odom, -1) {
		watch = append(watch, html.UnescapeString(m[1]))
	}
	if strings.Join(watch, ",") != "bobco,acme,it's" {
		t.Errorf("overview accounts to watch %v, want the at-risk bobco, then the gaps acme and it's", watch)
	}
	art := artifactsDir(t)
	chromium(t, "--screenshot="+filepath.Join(art, "account.png"), "--window-size=1280,1600", "--hide-scrollbars", page("/accounts/acme"))
	t.Logf("screenshot in %s", art)
}
