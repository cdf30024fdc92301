package api

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/klantreis/journey/pkg/warehouse"
	"github.com/klantreis/journey/services/api/svg"
)

// web holds the dashboard's templates and static assets: everything the
// page needs ships in the binary, nothing is fetched from elsewhere.
//
//go:embed web
var web embed.FS

type dashboard struct {
	s      *Server
	tmpl   map[string]*template.Template
	assets fs.FS
}

var tmplFuncs = template.FuncMap{
	"when": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			return v.UTC().Format("2006-01-02 15:04")
		case *time.Time:
			if v == nil {
				return "—"
			}
			return v.UTC().Format("2006-01-02 15:04")
		}
		return ""
	},
	"intp": func(p *int64) string {
		if p == nil {
			return "—"
		}
		if *p > 0 {
			return "+" + strconv.FormatInt(*p, 10)
		}
		return strconv.FormatInt(*p, 10)
	},
	"score": func(p *uint8) string {
		if p == nil {
			return "—"
		}
		return strconv.Itoa(int(*p))
	},
	"pct": func(p *float64) string {
		if p == nil {
			return "—"
		}
		return strconv.FormatFloat(*p*100, 'f', 1, 64) + "%"
	},
	"dur": func(p *float64) string {
		if p == nil {
			return "—"
		}
		return humanDuration(*p)
	},
	"money":       money,
	"stageName":   stageName,
	"processName": processName,
	"customerURL": func(id string) string {
		return "/customers/" + url.PathEscape(id)
	},
	"accountURL": func(id string) string {
		return "/accounts/" + url.PathEscape(id)
	},
	"deref": func(p *int) int { return *p },
}

// money renders an amount in minor units as "EUR 2,004.17".
func money(cents int64, currency string) string {
	neg := ""
	if cents < 0 {
		neg, cents = "-", -cents
	}
	whole := strconv.FormatInt(cents/100, 10)
	for i := len(whole) - 3; i > 0; i -= 3 {
		whole = whole[:i] + "," + whole[i:]
	}
	return strings.TrimSpace(currency + " " + neg + whole + "." + fmt.Sprintf("%02d", cents%100))
}

func stageName(s string) string {
	switch s {
	case "prospect":
		return "Prospect"
	case "new_customer":
		return "New customer"
	case "loyal_customer":
		return "Loyal customer"
	case "ex_customer":
		return "Ex-customer"
	case "none":
		return "—"
	}
	return s
}

// humanDuration renders seconds as the two largest units, e.g. "3d 4h".
func humanDuration(sec float64) string {
	d := time.Duration(sec * float64(time.Second))
	neg := ""
	if d < 0 {
		neg, d = "-", -d
	}
	days := int64(d / (24 * time.Hour))
	h := int64(d/time.Hour) % 24
	m := int64(d/time.Minute) % 60
	switch {
	case days > 0:
		return fmt.Sprintf("%s%dd %dh", neg, days, h)
	case h > 0:
		return fmt.Sprintf("%s%dh %dm", neg, h, m)
	default:
		return fmt.Sprintf("%s%dm %ds", neg, m, int64(d/time.Second)%60)
	}
}

func newDashboard(s *Server) (*dashboard, error) {
	d := &dashboard{s: s, tmpl: map[string]*template.Template{}}
	for _, page := range []string{"overview.html", "customer.html", "account.html", "error.html", "login.html", "ops.html"} {
		t, err := template.New(page).Funcs(tmplFuncs).ParseFS(web, "web/templates/layout.html", "web/templates/"+page)
		if err != nil {
			return nil, fmt.Errorf("api: dashboard template %s: %w", page, err)
		}
		d.tmpl[page] = t
	}
	sub, err := fs.Sub(web, "web/assets")
	if err != nil {
		return nil, err
	}
	d.assets = sub
	return d, nil
}

// render executes into a buffer first so a template error is a clean 500
// and not half a page.
func (d *dashboard) render(w http.ResponseWriter, page string, data any) error {
	return d.renderStatus(w, http.StatusOK, page, data)
}

func (d *dashboard) renderStatus(w http.ResponseWriter, status int, page string, data any) error {
	var buf bytes.Buffer
	if err := d.tmpl[page].ExecuteTemplate(&buf, "layout", data); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// The page needs nothing but itself and /assets.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}

// htmlError renders a request error as a page; the status and parameter
// are the same as the API's problem.
func (d *dashboard) htmlError(w http.ResponseWriter, r *http.Request, err error) error {
	rec := &problemRecorder{header: http.Header{}}
	d.s.writeError(rec, r, err)
	if rec.status == 0 {
		return nil
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(rec.status)
	return d.tmpl["error.html"].ExecuteTemplate(w, "layout", map[string]any{"Title": "Error", "Status": rec.status, "Body": rec.body.String()})
}

type problemRecorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (p *problemRecorder) Header() http.Header         { return p.header }
func (p *problemRecorder) Write(b []byte) (int, error) { return p.body.Write(b) }
func (p *problemRecorder) WriteHeader(c int)           { p.status = c }

type overviewData struct {
	Title     string
	NPS       NPSReport
	NPSChart  template.HTML
	Stages    []stageRow
	Total     uint64
	StageSVG  template.HTML
	Funnel    FunnelReport
	FunnelSVG template.HTML
	AtRisk    []CustomerJSON
	MoreRisk  bool
	Accounts  *accountsOverview // nil without projected accounts
	Query     string
	Intervals []string
}

type stageRow struct {
	Stage     string
	Customers uint64
}

func (d *dashboard) overview(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if err := checkParams(q, "from", "to", "interval"); err != nil {
		return d.htmlError(w, r, err)
	}
	nq := url.Values{}
	for _, k := range []string{"from", "to", "interval"} {
		if v := q.Get(k); v != "" {
			nq.Set(k, v)
		}
	}
	nps, err := d.s.nps(r, nq)
	if err != nil {
		return d.htmlError(w, r, err)
	}
	fq := url.Values{}
	for _, k := range []string{"from", "to"} {
		if v := q.Get(k); v != "" {
			fq.Set(k, v)
		}
	}
	funnel, err := d.s.funnel(r, fq)
	if err != nil {
		return d.htmlError(w, r, err)
	}
	st, err := d.s.db()
	if err != nil {
		return d.htmlError(w, r, err)
	}
	dist, err := st.StageDistribution(r.Context())
	if err != nil {
		return d.htmlError(w, r, err)
	}
	yes := true
	risk, err := st.Customers(r.Context(), warehouse.CustomerFilter{AtRisk: &yes, Limit: 21})
	if err != nil {
		return d.htmlError(w, r, err)
	}
	data := overviewData{Title: "Overview", NPS: nps, Funnel: funnel, Query: nq.Encode(), Intervals: []string{"day", "week", "month"}}
	if data.Accounts, err = d.accountsCard(r); err != nil {
		return d.htmlError(w, r, err)
	}
	counts := stageMap(dist)
	var bars []svg.Bar
	for _, s := range Stages {
		data.Stages = append(data.Stages, stageRow{s, counts[s]})
		data.Total += counts[s]
	}
	for _, row := range data.Stages {
		share := 0.0
		if data.Total > 0 {
			share = float64(row.Customers) / float64(data.Total) * 100
		}
		bars = append(bars, svg.Bar{Label: stageName(row.Stage), Value: float64(row.Customers),
			Note: strconv.FormatUint(row.Customers, 10) + " (" + strconv.FormatFloat(share, 'f', 1, 64) + "%)", Class: "stage-" + row.Stage})
	}
	data.StageSVG = svg.HBars("Customers per lifecycle stage", 560, bars)
	var fb []svg.Bar
	for _, p := range funnel.Processes {
		label := processName(p.Process)
		fb = append(fb, svg.Bar{Label: label, Value: float64(p.Entered), Note: strconv.FormatUint(p.Entered, 10) + " entered", Class: "entered"})
		fb = append(fb, svg.Bar{Label: "", Value: float64(p.Converted), Note: strconv.FormatUint(p.Converted, 10) + " converted", Class: "converted"})
	}
	data.FunnelSVG = svg.HBars("Funnel of the three processes", 560, fb)
	if len(nps.Series) > 0 {
		var cols []svg.Column
		for _, p := range nps.Series[0].Points {
			col := svg.Column{Label: shortPeriod(p.Period, nps.Interval), Values: []float64{float64(p.Promoters), float64(p.Passives), float64(p.Detractors)}}
			if p.NPS != nil {
				v := float64(*p.NPS)
				col.Line = &v
			}
			cols = append(cols, col)
		}
		data.NPSChart = svg.Stacked("NPS trend with promoters, passives and detractors", 1160, 320,
			[]string{"promoters", "passives", "detractors"}, []string{"promoter", "passive", "detractor"}, cols, "NPS", -100, 100)
	}
	for i, c := range risk {
		if i == 20 {
			data.MoreRisk = true
			break
		}
		data.AtRisk = append(data.AtRisk, customerJSON(c))
	}
	return d.render(w, "overview.html", data)
}

func processName(p string) string {
	switch p {
	case warehouse.ProcessMarketToSales:
		return "Market → Sales"
	case warehouse.ProcessSalesToOrder:
		return "Sales → Order"
	case warehouse.ProcessOrderToLoyal:
		return "Order → Loyal"
	}
	return p
}

func shortPeriod(p, interval string) string {
	t, err := time.Parse(time.DateOnly, p)
	if err != nil {
		return p
	}
	if interval == string(warehouse.Month) {
		return t.Format("Jan 2006")
	}
	return t.Format("Jan 2")
}

type customerData struct {
	Title    string
	Customer CustomerJSON
	Timeline TimelinePage
	Next     string
}

func (d *dashboard) customer(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := validID("id", id); err != nil {
		return d.htmlError(w, r, err)
	}
	q := r.URL.Query()
	if err := checkParams(q, "cursor"); err != nil {
		return d.htmlError(w, r, err)
	}
	c, err := d.s.customerWithExplain(r, id)
	if err != nil {
		return d.htmlError(w, r, err)
	}
	tq := url.Values{"limit": {"100"}}
	if v := q.Get("cursor"); v != "" {
		tq.Set("cursor", v)
	}
	tl, err := d.s.timeline(r, id, tq)
	if err != nil && !isNotFound(err) {
		return d.htmlError(w, r, err)
	}
	data := customerData{Title: "Customer " + id, Customer: c, Timeline: tl}
	if tl.NextCursor != nil {
		data.Next = "/customers/" + url.PathEscape(id) + "?cursor=" + url.QueryEscape(*tl.NextCursor)
	}
	return d.render(w, "customer.html", data)
}

func isNotFound(err error) bool { return err != nil && errors.Is(err, warehouse.ErrNotFound) }

func (d *dashboard) asset(w http.ResponseWriter, r *http.Request) error {
	name := path.Clean(r.PathValue("name"))
	b, err := fs.ReadFile(d.assets, name)
	if err != nil {
		writeProblem(w, r, Problem{Type: ProblemBase + "no-route", Title: "No such resource", Status: http.StatusNotFound})
		return nil
	}
	switch path.Ext(name) {
	case ".css":
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	case ".svg":
		w.Header().Set("Content-Type", "image/svg+xml")
	}
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, err = w.Write(b)
	return err
}
