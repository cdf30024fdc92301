package api

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"

	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/warehouse"
)

// NPSPoint is one period of an NPS series; NPS is null without respondents.
type NPSPoint struct {
	Period      string `json:"period"` // YYYY-MM-DD, the period's first day
	Promoters   uint64 `json:"promoters"`
	Passives    uint64 `json:"passives"`
	Detractors  uint64 `json:"detractors"`
	Respondents uint64 `json:"respondents"`
	NPS         *int64 `json:"nps"`
}

// NPSSeries is the series of one group ("" when not grouped).
type NPSSeries struct {
	Group  string     `json:"group"`
	Points []NPSPoint `json:"points"`
}

// NPSReport answers /v1/metrics/nps.
type NPSReport struct {
	From     time.Time   `json:"from"`
	To       time.Time   `json:"to"`
	Interval string      `json:"interval"`
	GroupBy  *string     `json:"group_by"`
	Series   []NPSSeries `json:"series"`
}

// defaultSpan is how far back a metrics query looks without from.
var defaultSpan = map[warehouse.Interval]func(time.Time) time.Time{
	warehouse.Day:   func(t time.Time) time.Time { return t.AddDate(0, 0, -30) },
	warehouse.Week:  func(t time.Time) time.Time { return t.AddDate(0, 0, -7*12) },
	warehouse.Month: func(t time.Time) time.Time { return t.AddDate(0, -12, 0) },
}

// rangeParams reads from/to (to exclusive; default: the end of today UTC
// and a span before it) and checks from < to.
func (s *Server) rangeParams(q url.Values, span func(time.Time) time.Time) (time.Time, time.Time, error) {
	now := s.now().UTC()
	tomorrow := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, 1)
	to, err := parseTime(q, "to", tomorrow)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	from, err := parseTime(q, "from", span(to))
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	if !from.Before(to) {
		return time.Time{}, time.Time{}, badParam("from", "must be before to")
	}
	return from, to, nil
}

func (s *Server) nps(r *http.Request, q url.Values) (NPSReport, error) {
	if err := checkParams(q, "from", "to", "interval", "group_by"); err != nil {
		return NPSReport{}, err
	}
	iv := warehouse.Interval(q.Get("interval"))
	if iv == "" {
		iv = warehouse.Week
	}
	if !warehouse.ValidInterval(iv) {
		return NPSReport{}, badParam("interval", "must be day, week or month")
	}
	g := warehouse.NPSGroup(q.Get("group_by"))
	if !warehouse.ValidNPSGroup(g) {
		return NPSReport{}, badParam("group_by", "must be stage, source or account")
	}
	from, to, err := s.rangeParams(q, defaultSpan[iv])
	if err != nil {
		return NPSReport{}, err
	}
	ps := periods(from, to, iv, s.set.MaxBuckets)
	if len(ps) > s.set.MaxBuckets {
		return NPSReport{}, badParam("from", "the range holds more than "+strconv.Itoa(s.set.MaxBuckets)+" "+string(iv)+"s; narrow it or use a longer interval")
	}
	st, err := s.db()
	if err != nil {
		return NPSReport{}, err
	}
	rows, err := st.NPS(r.Context(), from, to, iv, g, s.set.MaxSeries*len(ps))
	if err != nil {
		return NPSReport{}, err
	}
	rep := NPSReport{From: from, To: to, Interval: string(iv)}
	if g != warehouse.GroupNone {
		gs := string(g)
		rep.GroupBy = &gs
	}
	byGroup := map[string]map[string]warehouse.NPSRow{}
	groups := []string{}
	if g == warehouse.GroupNone {
		byGroup[""] = map[string]warehouse.NPSRow{}
		groups = append(groups, "")
	}
	for _, row := range rows {
		m, ok := byGroup[row.Group]
		if !ok {
			m = map[string]warehouse.NPSRow{}
			byGroup[row.Group] = m
			groups = append(groups, row.Group)
		}
		m[row.Period.UTC().Format(time.DateOnly)] = row
	}
	if len(groups) > s.set.MaxSeries {
		return NPSReport{}, warehouse.ErrTooMany
	}
	sort.Strings(groups)
	for _, grp := range groups {
		ser := NPSSeries{Group: grp, Points: make([]NPSPoint, 0, len(ps))}
		for _, p := range ps {
			key := p.Format(time.DateOnly)
			pt := NPSPoint{Period: key}
			if row, ok := byGroup[grp][key]; ok {
				pt.Promoters, pt.Passives, pt.Detractors, pt.Respondents = row.Promoters, row.Passives, row.Detractors, row.Respondents
				if res := journey.NPSFromCounts(int(row.Promoters), int(row.Passives), int(row.Detractors)); res.OK {
					v := int64(res.Value)
					pt.NPS = &v
				}
			}
			ser.Points = append(ser.Points, pt)
		}
		rep.Series = append(rep.Series, ser)
	}
	return rep, nil
}

func (s *Server) getNPS(w http.ResponseWriter, r *http.Request) error {
	rep, err := s.nps(r, r.URL.Query())
	if err != nil {
		return err
	}
	return writeJSON(w, rep)
}

// LifecycleReport answers /v1/metrics/lifecycle: customers per stage now,
// at the start and at the end of the period, and the transitions in it.
type LifecycleReport struct {
	From    time.Time         `json:"from"`
	To      time.Time         `json:"to"`
	Current map[string]uint64 `json:"current"`
	AtFrom  map[string]uint64 `json:"at_from"`
	AtTo    map[string]uint64 `json:"at_to"`
	Flows   []FlowJSON        `json:"flows"`
}

// FlowJSON counts the transitions from one stage to another.
type FlowJSON struct {
	From        string `json:"from"`
	To          string `json:"to"`
	Transitions uint64 `json:"transitions"`
}

func stageMap(cs []warehouse.StageCount) map[string]uint64 {
	m := make(map[string]uint64, len(Stages))
	for _, st := range Stages {
		m[st] = 0
	}
	for _, c := range cs {
		m[c.Stage] = c.Customers
	}
	return m
}

func (s *Server) lifecycle(r *http.Request, q url.Values) (LifecycleReport, error) {
	if err := checkParams(q, "from", "to"); err != nil {
		return LifecycleReport{}, err
	}
	from, to, err := s.rangeParams(q, defaultSpan[warehouse.Day])
	if err != nil {
		return LifecycleReport{}, err
	}
	st, err := s.db()
	if err != nil {
		return LifecycleReport{}, err
	}
	ctx := r.Context()
	cur, err := st.StageDistribution(ctx)
	if err != nil {
		return LifecycleReport{}, err
	}
	atFrom, err := st.StageDistributionAt(ctx, from)
	if err != nil {
		return LifecycleReport{}, err
	}
	atTo, err := st.StageDistributionAt(ctx, to)
	if err != nil {
		return LifecycleReport{}, err
	}
	flows, err := st.StageFlows(ctx, from, to)
	if err != nil {
		return LifecycleReport{}, err
	}
	rep := LifecycleReport{From: from, To: to, Current: stageMap(cur), AtFrom: stageMap(atFrom), AtTo: stageMap(atTo), Flows: []FlowJSON{}}
	for _, f := range flows {
		rep.Flows = append(rep.Flows, FlowJSON{From: f.From, To: f.To, Transitions: f.Transitions})
	}
	return rep, nil
}

func (s *Server) getLifecycle(w http.ResponseWriter, r *http.Request) error {
	rep, err := s.lifecycle(r, r.URL.Query())
	if err != nil {
		return err
	}
	return writeJSON(w, rep)
}

// FunnelReport answers /v1/metrics/funnel.
type FunnelReport struct {
	From      time.Time     `json:"from"`
	To        time.Time     `json:"to"`
	Processes []ProcessJSON `json:"processes"`
}

// ProcessJSON is one of the three processes. ConversionRate is
// converted/entered (null when nobody entered); MedianSeconds is null when
// nobody converted.
type ProcessJSON struct {
	Process        string   `json:"process"`
	FromMilestone  string   `json:"from_milestone"`
	ToMilestone    string   `json:"to_milestone"`
	Entered        uint64   `json:"entered"`
	Converted      uint64   `json:"converted"`
	ConversionRate *float64 `json:"conversion_rate"`
	MedianSeconds  *float64 `json:"median_seconds"`
}

var milestones = map[string][2]string{
	warehouse.ProcessMarketToSales: {"first_visit", "first_quote"},
	warehouse.ProcessSalesToOrder:  {"first_quote", "first_order"},
	warehouse.ProcessOrderToLoyal:  {"first_order", "first_loyal"},
}

// funnelEpoch is the default start of the funnel: all customers.
var funnelEpoch = time.Date(1971, 1, 1, 0, 0, 0, 0, time.UTC)

func (s *Server) funnel(r *http.Request, q url.Values) (FunnelReport, error) {
	if err := checkParams(q, "from", "to"); err != nil {
		return FunnelReport{}, err
	}
	from, to, err := s.rangeParams(q, func(time.Time) time.Time { return funnelEpoch })
	if err != nil {
		return FunnelReport{}, err
	}
	st, err := s.db()
	if err != nil {
		return FunnelReport{}, err
	}
	steps, err := st.Funnel(r.Context(), from, to)
	if err != nil {
		return FunnelReport{}, err
	}
	rep := FunnelReport{From: from, To: to}
	for _, p := range steps {
		pj := ProcessJSON{Process: p.Process, FromMilestone: milestones[p.Process][0], ToMilestone: milestones[p.Process][1],
			Entered: p.Entered, Converted: p.Converted, MedianSeconds: p.MedianSeconds}
		if p.Entered > 0 {
			rate := float64(p.Converted) / float64(p.Entered)
			pj.ConversionRate = &rate
		}
		rep.Processes = append(rep.Processes, pj)
	}
	return rep, nil
}

func (s *Server) getFunnel(w http.ResponseWriter, r *http.Request) error {
	rep, err := s.funnel(r, r.URL.Query())
	if err != nil {
		return err
	}
	return writeJSON(w, rep)
}
