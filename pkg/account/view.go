package account

import (
	"slices"
	"strings"
	"time"

	"github.com/klantreis/journey/pkg/journey"
)

// MemberView is a current member as a view lists it.
type MemberView struct {
	CustomerID string    `json:"customer_id"`
	ContactID  string    `json:"contact_id,omitempty"`
	Role       string    `json:"role,omitempty"`
	LastTouch  time.Time `json:"last_touch"`
	// Engaged: a touchpoint within the coverage window before now.
	Engaged bool `json:"engaged"`
	// Score is the latest survey answer, -1 when none.
	Score          int              `json:"score"`
	Category       journey.Category `json:"category,omitempty"`
	OpenComplaints int              `json:"open_complaints"`
}

// View is an account as the rules see it at one moment.
type View struct {
	AccountID  string               `json:"account_id"`
	Stage      journey.Stage        `json:"stage"`
	StageSince time.Time            `json:"stage_since"`
	History    []journey.Transition `json:"history"`
	// Members are the current members, by role (decision maker first),
	// then customer and contact id.
	Members []MemberView `json:"members"`
	// Former counts contacts that moved to another account.
	Former int `json:"former_members"`
	// Coverage: the roles engaged within the coverage window; Uncovered
	// the others.
	Coverage  []string `json:"coverage"`
	Uncovered []string `json:"uncovered"`
	// OpenQuotes are the quote ids sent and not closed; Gap is true when
	// there is one and no current decision maker was engaged within the
	// gap window.
	OpenQuotes []string `json:"open_quotes"`
	Gap        bool     `json:"gap"`
	// NPS over the current members, each with their latest answer.
	NPS journey.NPSResult `json:"nps"`
	// AtRisk: a current decision maker or buyer is a detractor, or a
	// current member has an open complaint; AtRiskReasons says which
	// ("detractor_decision_maker", "detractor_buyer", "open_complaint").
	AtRisk         bool      `json:"at_risk"`
	AtRiskReasons  []string  `json:"at_risk_reasons"`
	OpenComplaints int       `json:"open_complaints"`
	LastTouch      time.Time `json:"last_touch"`
	// Next is the earliest time after now at which the view changes by
	// time alone (inactivity, a role leaving coverage, a gap opening); zero
	// when none.
	Next time.Time `json:"next,omitzero"`
	// RulesVersion of the rules that made the view.
	RulesVersion string `json:"rules_version"`
}

// Flags returns the view's comparable summary.
func (v *View) Flags() Flags {
	return Flags{Stage: v.Stage, Gap: v.Gap, AtRisk: v.AtRisk, Coverage: strings.Join(v.Coverage, ",")}
}

// flags is View(s, now).Flags() without building the view: it runs on
// every apply (TestFlagsAgreeWithTheView keeps the two the same).
func (b *Rulebook) flags(s *State, now time.Time) Flags {
	covFrom := now.Add(-b.rules.CoverageWindow)
	gapFrom := now.Add(-b.rules.GapWindow)
	var covered uint
	dmEngaged, risk := false, false
	for _, m := range s.Members {
		if !m.Current(s.AccountID) {
			continue
		}
		if m.LastTouch != nil {
			if r := roleRank(m.Role); r < len(Roles()) && !m.LastTouch.At.Before(covFrom) {
				covered |= 1 << r
			}
			if m.Role == RoleDecisionMaker && !m.LastTouch.At.Before(gapFrom) {
				dmEngaged = true
			}
		}
		if !risk && m.Survey != nil && (m.Role == RoleDecisionMaker || m.Role == RoleBuyer) &&
			journey.CategoryOf(m.Survey.Score) == journey.CategoryDetractor {
			risk = true
		}
		if !risk && m.OpenComplaints() > 0 {
			risk = true
		}
	}
	open := false
	for _, q := range s.Quotes {
		if q.Open() {
			open = true
			break
		}
	}
	return Flags{Stage: s.Stage.Stage(), Gap: open && !dmEngaged, AtRisk: risk, Coverage: coverageNames[covered]}
}

// coverageNames are the Flags.Coverage strings of every set of covered
// roles, by bit mask of role rank.
var coverageNames = func() []string {
	rs := Roles()
	out := make([]string, 1<<len(rs))
	for mask := range out {
		var names []string
		for i, r := range rs {
			if mask&(1<<i) != 0 {
				names = append(names, r)
			}
		}
		out[mask] = strings.Join(names, ",")
	}
	return out
}()

// View derives the account at now. The stage is the history's as of the
// last apply (whose now placed the inactivity tail); coverage and the gap
// are computed at now.
func (b *Rulebook) View(s *State, now time.Time) View {
	v := View{AccountID: s.AccountID, Stage: s.Stage.Stage(), StageSince: s.Stage.StageSince(),
		History: s.Stage.Explain(), RulesVersion: b.Version()}
	if v.History == nil {
		v.History = []journey.Transition{}
	}
	covFrom := now.Add(-b.rules.CoverageWindow)
	gapFrom := now.Add(-b.rules.GapWindow)
	covered := map[string]bool{}
	var dmLatest time.Time
	var responses []journey.Response
	next := s.Stage.Expires
	soonest := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	riskDM, riskBuyer := false, false
	for _, m := range s.Members {
		if !m.Current(s.AccountID) {
			v.Former++
			continue
		}
		mv := MemberView{CustomerID: m.CustomerID, ContactID: m.ContactID, Role: m.Role,
			LastTouch: touchTime(m.LastTouch), Score: -1, OpenComplaints: m.OpenComplaints()}
		if mv.LastTouch.After(v.LastTouch) {
			v.LastTouch = mv.LastTouch
		}
		if m.LastTouch != nil && !m.LastTouch.At.Before(covFrom) {
			mv.Engaged = true
			if m.Role != "" {
				covered[m.Role] = true
			}
			soonest(m.LastTouch.At.Add(b.rules.CoverageWindow))
		}
		if m.Role == RoleDecisionMaker && m.LastTouch != nil && m.LastTouch.At.After(dmLatest) {
			dmLatest = m.LastTouch.At
		}
		if m.Survey != nil {
			mv.Score, mv.Category = m.Survey.Score, journey.CategoryOf(m.Survey.Score)
			responses = append(responses, journey.Response{CustomerID: m.CustomerID, ContactID: m.ContactID,
				Time: m.Survey.At, Score: m.Survey.Score})
			if mv.Category == journey.CategoryDetractor {
				riskDM = riskDM || m.Role == RoleDecisionMaker
				riskBuyer = riskBuyer || m.Role == RoleBuyer
			}
		}
		v.OpenComplaints += mv.OpenComplaints
		v.Members = append(v.Members, mv)
	}
	slices.SortFunc(v.Members, func(x, y MemberView) int {
		if c := roleRank(x.Role) - roleRank(y.Role); c != 0 {
			return c
		}
		if c := strings.Compare(x.CustomerID, y.CustomerID); c != 0 {
			return c
		}
		return strings.Compare(x.ContactID, y.ContactID)
	})
	if v.Members == nil {
		v.Members = []MemberView{}
	}
	v.Coverage, v.Uncovered = []string{}, []string{}
	for _, r := range Roles() {
		if covered[r] {
			v.Coverage = append(v.Coverage, r)
		} else {
			v.Uncovered = append(v.Uncovered, r)
		}
	}
	v.OpenQuotes = []string{}
	for _, q := range s.Quotes {
		if q.Open() {
			v.OpenQuotes = append(v.OpenQuotes, q.QuoteID)
		}
	}
	slices.Sort(v.OpenQuotes)
	dmEngaged := !dmLatest.IsZero() && !dmLatest.Before(gapFrom)
	v.Gap = len(v.OpenQuotes) > 0 && !dmEngaged
	if len(v.OpenQuotes) > 0 && dmEngaged {
		soonest(dmLatest.Add(b.rules.GapWindow))
	}
	v.Next = next
	v.NPS = journey.NPS(responses)
	v.AtRiskReasons = []string{}
	if riskDM {
		v.AtRiskReasons = append(v.AtRiskReasons, "detractor_decision_maker")
	}
	if riskBuyer {
		v.AtRiskReasons = append(v.AtRiskReasons, "detractor_buyer")
	}
	if v.OpenComplaints > 0 {
		v.AtRiskReasons = append(v.AtRiskReasons, "open_complaint")
	}
	v.AtRisk = len(v.AtRiskReasons) > 0
	return v
}
