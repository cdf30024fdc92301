package api

import (
	"context"
	"html/template"
	"net/http"
	"strconv"

	"github.com/klantreis/journey/pkg/warehouse"
	"github.com/klantreis/journey/services/api/svg"
)

// accountTimeliner is the account page's timeline source; *warehouse.DB
// is one. A store without it shows the page without touchpoints.
type accountTimeliner interface {
	AccountTimeline(ctx context.Context, id string, limit int) ([]warehouse.Touchpoint, error)
}

// accountTimelineLimit bounds the touchpoints on the account page.
const accountTimelineLimit = 100

type accountData struct {
	Title    string
	Account  AccountJSON
	NPS      *int64
	Timeline []TimelineItem
	Limit    int
}

func (d *dashboard) account(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := validID("id", id); err != nil {
		return d.htmlError(w, r, err)
	}
	if err := checkParams(r.URL.Query()); err != nil {
		return d.htmlError(w, r, err)
	}
	a, err := d.s.account(r, id)
	if err != nil {
		return d.htmlError(w, r, err)
	}
	data := accountData{Title: "Account " + id, Account: a, Limit: accountTimelineLimit}
	if a.NPS.NPS != nil {
		v := int64(*a.NPS.NPS)
		data.NPS = &v
	}
	var tps []warehouse.Touchpoint
	if st, err := d.s.db(); err == nil {
		if tl, ok := st.(accountTimeliner); ok {
			if tps, err = tl.AccountTimeline(r.Context(), id, accountTimelineLimit); err != nil {
				return d.htmlError(w, r, err)
			}
		}
	}
	ts := make([]warehouse.Transition, 0, len(a.Explain.Transitions))
	for i, t := range a.Explain.Transitions {
		ts = append(ts, warehouse.Transition{Idx: uint32(i), From: t.From, To: t.To, At: t.At, Reason: t.Reason,
			CauseEventIDs: t.CauseEventIDs, RulesVersion: t.RulesVersion})
	}
	// The page shows the latest touchpoints: changes before the first of
	// them are in "Why this stage".
	var after *warehouse.TimelinePos
	if len(tps) == accountTimelineLimit {
		after = &warehouse.TimelinePos{TimeMs: tps[0].TimeMs - 1}
	}
	data.Timeline = mergeTimeline(tps, ts, after, false)
	return d.render(w, "account.html", data)
}

// accountsOverview is the overview's account card: accounts per stage and
// the accounts at risk or with a coverage gap.
type accountsOverview struct {
	Stages   []accountStageRow
	Total    uint64
	StageSVG template.HTML
	Watch    []AccountJSON
	More     bool
}

type accountStageRow struct {
	Stage                  string
	Accounts, AtRisk, Gaps uint64
}

// accountStager is what the overview's account card reads.
type accountStager interface {
	AccountStageDistribution(ctx context.Context) ([]warehouse.AccountStageCount, error)
}

// accountsCard returns nil when the store has no accounts or none are
// projected, so that the overview of a B2C deployment does not change.
func (d *dashboard) accountsCard(r *http.Request) (*accountsOverview, error) {
	st, err := d.s.db()
	if err != nil {
		return nil, err
	}
	as, ok1 := st.(AccountStore)
	sg, ok2 := st.(accountStager)
	if !ok1 || !ok2 {
		return nil, nil
	}
	dist, err := sg.AccountStageDistribution(r.Context())
	if err != nil || len(dist) == 0 {
		return nil, err
	}
	out := &accountsOverview{}
	by := map[string]warehouse.AccountStageCount{}
	for _, c := range dist {
		by[c.Stage] = c
	}
	var bars []svg.Bar
	for _, s := range Stages {
		c := by[s]
		out.Stages = append(out.Stages, accountStageRow{s, c.Accounts, c.AtRisk, c.Gaps})
		out.Total += c.Accounts
		bars = append(bars, svg.Bar{Label: stageName(s), Value: float64(c.Accounts), Note: strconv.FormatUint(c.Accounts, 10), Class: "stage-" + s})
	}
	out.StageSVG = svg.HBars("Accounts per lifecycle stage", 560, bars)
	seen := map[string]bool{}
	yes := true
	for _, f := range []warehouse.AccountFilter{{AtRisk: &yes, Limit: 11}, {Gap: &yes, Limit: 11}} {
		list, err := as.Accounts(r.Context(), f)
		if err != nil {
			return nil, err
		}
		if len(list) > 10 {
			out.More, list = true, list[:10]
		}
		for _, a := range list {
			if !seen[a.AccountID] {
				seen[a.AccountID] = true
				out.Watch = append(out.Watch, accountJSON(a))
			}
		}
	}
	return out, nil
}
