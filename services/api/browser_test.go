package api_test

import (
	"context"
	"fmt"
	"html"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klantreis/journey/services/api"
)

const chromiumPath = "/usr/bin/chromium"

// chromium runs headless Chromium with extra args and returns stdout. It
// needs no network: every asset the page uses is served by the API.
func chromium(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, chromiumPath, append(base, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

func artifactsDir(t *testing.T) string {
	if d := os.Getenv("JOURNEY_TEST_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

var (
	npsRowRE    = regexp.MustCompile(`(?s)<tr data-testid="nps-row" data-period="([^"]+)">(.*?)</tr>`)
	fieldRE     = regexp.MustCompile(`<td data-field="([a-z]+)">([^<]*)</td>`)
	stageRE     = regexp.MustCompile(`<td data-testid="stage-count" data-stage="([a-z_]+)">(\d+)</td>`)
	funnelRE    = regexp.MustCompile(`(?s)<tr data-testid="funnel-row" data-process="([a-z_]+)">(.*?)</tr>`)
	atRiskRE    = regexp.MustCompile(`<tr data-testid="at-risk-row" data-customer="([^"]+)">`)
	stageBadge  = regexp.MustCompile(`data-testid="customer-stage" data-stage="([a-z_]+)"`)
	transRE     = regexp.MustCompile(`data-testid="transition" data-to="([a-z_]+)"`)
	timelineRE  = regexp.MustCompile(`data-testid="timeline-item" data-type="([a-z_]+)"`)
	customerIDs = regexp.MustCompile(`data-testid="customer-id">([^<]*)<`)
)

func fields(row string) map[string]string {
	m := map[string]string{}
	for _, f := range fieldRE.FindAllStringSubmatch(row, -1) {
		m[f[1]] = html.UnescapeString(f[2])
	}
	return m
}

// A person's view: headless Chromium loads the dashboard from the running
// API, and the numbers it shows must be the API's. Screenshots are saved
// to $JOURNEY_TEST_ARTIFACTS (or a temp dir).
func TestDashboardInChromium(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium is required in CI (%v); make test installs it", err)
		}
		t.Skipf("skipping: %s not installed (make test installs it)", chromiumPath)
	}
	// The dashboard behind a token, as make run serves it: a browser
	// without a session is sent to the login; the login link (token once
	// in the address, then a cookie) opens the page.
	const tok = "browser-read-token"
	srv, _, _ := newServer(t, api.Settings{Tokens: []string{tok}})
	login := chromium(t, "--dump-dom", srv.URL+"/")
	if !strings.Contains(login, `data-testid="login"`) {
		t.Fatalf("a browser without a token is not shown the login:\n%s", login)
	}
	page := func(path string) string { return srv.URL + "/login?token=" + tok + "&next=" + url.QueryEscape(path) }
	// The API calls below authenticate with the token as Basic password.
	hs := struct{ URL string }{strings.Replace(srv.URL, "http://", "http://reader:"+tok+"@", 1)}
	const q = "from=2024-01-01&to=2024-02-12&interval=week"
	dom := chromium(t, "--dump-dom", page("/?"+q))

	var nps api.NPSReport
	must200(t, hs.URL, "/v1/metrics/nps?"+q, &nps)
	rows := npsRowRE.FindAllStringSubmatch(dom, -1)
	if len(rows) != len(nps.Series[0].Points) || len(rows) != 6 {
		t.Fatalf("dashboard shows %d NPS rows, API has %d", len(rows), len(nps.Series[0].Points))
	}
	for i, r := range rows {
		pt := nps.Series[0].Points[i]
		f := fields(r[2])
		wantNPS := "—"
		if pt.NPS != nil {
			wantNPS = strconv.FormatInt(*pt.NPS, 10)
			if *pt.NPS > 0 {
				wantNPS = "+" + wantNPS
			}
		}
		got := fmt.Sprintf("%s %s %s %s %s %s", r[1], f["promoters"], f["passives"], f["detractors"], f["respondents"], f["nps"])
		want := fmt.Sprintf("%s %d %d %d %d %s", pt.Period, pt.Promoters, pt.Passives, pt.Detractors, pt.Respondents, wantNPS)
		if got != want {
			t.Errorf("NPS row %d: page %q, API %q", i, got, want)
		}
	}
	if !strings.Contains(dom, "<svg") || !strings.Contains(dom, `class="promoter"`) || !strings.Contains(dom, `class="line"`) {
		t.Error("NPS chart with the promoter split and the NPS line is missing")
	}

	var life api.LifecycleReport
	must200(t, hs.URL, "/v1/metrics/lifecycle", &life)
	shown := map[string]uint64{}
	for _, m := range stageRE.FindAllStringSubmatch(dom, -1) {
		v, _ := strconv.ParseUint(m[2], 10, 64)
		shown[m[1]] = v
	}
	for st, v := range life.Current {
		if shown[st] != v {
			t.Errorf("stage %s: page %d, API %d", st, shown[st], v)
		}
	}
	if len(shown) != 4 {
		t.Errorf("stages shown: %v", shown)
	}

	var fun api.FunnelReport
	must200(t, hs.URL, "/v1/metrics/funnel?from=2024-01-01&to=2024-02-12", &fun)
	frows := funnelRE.FindAllStringSubmatch(dom, -1)
	if len(frows) != 3 {
		t.Fatalf("funnel rows: %d", len(frows))
	}
	for i, r := range frows {
		p := fun.Processes[i]
		f := fields(r[2])
		rate := "—"
		if p.ConversionRate != nil {
			rate = strconv.FormatFloat(*p.ConversionRate*100, 'f', 1, 64) + "%"
		}
		got := fmt.Sprintf("%s %s %s %s", r[1], f["entered"], f["converted"], f["rate"])
		want := fmt.Sprintf("%s %d %d %s", p.Process, p.Entered, p.Converted, rate)
		if got != want {
			t.Errorf("funnel %d: page %q, API %q", i, got, want)
		}
	}

	var risk api.CustomerPage
	must200(t, hs.URL, "/v1/customers?at_risk=true", &risk)
	var shownRisk, apiRisk []string
	for _, m := range atRiskRE.FindAllStringSubmatch(dom, -1) {
		shownRisk = append(shownRisk, html.UnescapeString(m[1]))
	}
	for _, c := range risk.Items {
		apiRisk = append(apiRisk, c.CustomerID)
	}
	if strings.Join(shownRisk, ",") != strings.Join(apiRisk, ",") || len(apiRisk) != 2 {
		t.Errorf("at risk: page %q, API %q", shownRisk, apiRisk)
	}

	art := artifactsDir(t)
	shot := filepath.Join(art, "dashboard.png")
	chromium(t, "--screenshot="+shot, "--window-size=1280,1600", "--hide-scrollbars", page("/?"+q))
	if st, err := os.Stat(shot); err != nil || st.Size() < 10_000 {
		t.Errorf("screenshot %s: %v", shot, err)
	}

	// The customer page of the id full of SQL metacharacters.
	var c api.CustomerJSON
	must200(t, hs.URL, "/v1/customers/"+url.PathEscape(c1), &c)
	cdom := chromium(t, "--dump-dom", page("/customers/"+url.PathEscape(c1)))
	if m := stageBadge.FindStringSubmatch(cdom); m == nil || m[1] != c.Stage {
		t.Errorf("customer page stage: %v, API %s", m, c.Stage)
	}
	var tos []string
	for _, m := range transRE.FindAllStringSubmatch(cdom, -1) {
		tos = append(tos, m[1])
	}
	var apiTos []string
	for _, x := range c.Explain.Transitions {
		apiTos = append(apiTos, x.To)
	}
	if strings.Join(tos, ",") != strings.Join(apiTos, ",") {
		t.Errorf("why this stage: page %v, API %v", tos, apiTos)
	}
	var kinds []string
	for _, m := range timelineRE.FindAllStringSubmatch(cdom, -1) {
		kinds = append(kinds, m[1])
	}
	if len(kinds) != 11 || kinds[1] != "stage_change" {
		t.Errorf("timeline items: %v", kinds)
	}
	c3dom := chromium(t, "--dump-dom", page("/customers/"+url.PathEscape(c3)))
	if m := customerIDs.FindStringSubmatch(c3dom); m == nil || html.UnescapeString(m[1]) != c3 {
		t.Errorf("c3 page shows id %v", m)
	}
	chromium(t, "--screenshot="+filepath.Join(art, "customer.png"), "--window-size=1280,1400", "--hide-scrollbars", page("/customers/"+url.PathEscape(c1)))
	t.Logf("screenshots in %s", art)
}
