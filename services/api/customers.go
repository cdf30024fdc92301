package api

import (
	"net/http"
	"sort"
	"time"

	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/warehouse"
)

// Stages are the lifecycle stages a filter may name: journey's, in
// lifecycle order.
var Stages = func() []string {
	var out []string
	for _, s := range journey.Stages() {
		out = append(out, string(s))
	}
	return out
}()

// CustomerJSON is a customer's state as the API returns it.
type CustomerJSON struct {
	CustomerID    string           `json:"customer_id"`
	Stage         string           `json:"stage"`
	StageSince    time.Time        `json:"stage_since"`
	AccountID     string           `json:"account_id"`
	FirstSeen     time.Time        `json:"first_seen"`
	LastTouch     time.Time        `json:"last_touch"`
	AtRisk        bool             `json:"at_risk"`
	Satisfaction  SatisfactionJSON `json:"satisfaction"`
	Counts        CountsJSON       `json:"counts"`
	Milestones    MilestonesJSON   `json:"milestones"`
	ExpiresAt     *time.Time       `json:"expires_at"`
	Offboarded    bool             `json:"offboarded"`
	OffboardedAt  *time.Time       `json:"offboarded_at"`
	LastComplaint *time.Time       `json:"last_complaint_at"`
	RulesVersion  string           `json:"rules_version"`
	Version       uint64           `json:"version"`
	UpdatedAt     time.Time        `json:"updated_at"`
	Explain       *ExplainJSON     `json:"explain,omitempty"`
}

// SatisfactionJSON is the customer's latest survey answer.
type SatisfactionJSON struct {
	Score    *uint8 `json:"score"`
	Category string `json:"category"`
	Comment  string `json:"comment"`
}

// CountsJSON are the customer's counters.
type CountsJSON struct {
	CountedOrders  uint32 `json:"counted_orders"`
	Responses      uint32 `json:"responses"`
	OpenComplaints uint32 `json:"open_complaints"`
}

// MilestonesJSON are the funnel milestones (null until reached).
type MilestonesJSON struct {
	FirstVisit *time.Time `json:"first_visit_at"`
	FirstQuote *time.Time `json:"first_quote_at"`
	FirstOrder *time.Time `json:"first_order_at"`
	FirstLoyal *time.Time `json:"first_loyal_at"`
}

// ExplainJSON is "why this stage": the transitions that led to it.
type ExplainJSON struct {
	Stage        string           `json:"stage"`
	RulesVersion string           `json:"rules_version"`
	Transitions  []TransitionJSON `json:"transitions"`
}

// TransitionJSON is one stage change with the rule that fired and its causes.
type TransitionJSON struct {
	From          string    `json:"from"`
	To            string    `json:"to"`
	At            time.Time `json:"at"`
	Reason        string    `json:"reason"`
	CauseEventIDs []string  `json:"cause_event_ids"`
	RulesVersion  string    `json:"rules_version"`
}

func customerJSON(c warehouse.CustomerState) CustomerJSON {
	return CustomerJSON{
		CustomerID: c.CustomerID, Stage: c.Stage, StageSince: c.StageSince.UTC(), AccountID: c.AccountID,
		FirstSeen: c.FirstSeen.UTC(), LastTouch: c.LastTouch.UTC(), AtRisk: c.AtRisk,
		Satisfaction: SatisfactionJSON{Score: c.NPSScore, Category: c.NPSCategory, Comment: c.NPSComment},
		Counts:       CountsJSON{CountedOrders: c.CountedOrders, Responses: c.Responses, OpenComplaints: c.OpenComplaints},
		Milestones:   MilestonesJSON{utc(c.FirstVisitAt), utc(c.FirstQuoteAt), utc(c.FirstOrderAt), utc(c.FirstLoyalAt)},
		ExpiresAt:    utc(c.ExpiresAt), Offboarded: c.Offboarded, OffboardedAt: utc(c.OffboardedAt),
		LastComplaint: utc(c.LastComplaintAt), RulesVersion: c.RulesVersion, Version: c.Version, UpdatedAt: c.UpdatedAt.UTC(),
	}
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func transitionJSON(t warehouse.Transition) TransitionJSON {
	ids := t.CauseEventIDs
	if ids == nil {
		ids = []string{}
	}
	return TransitionJSON{From: t.From, To: t.To, At: t.At.UTC(), Reason: t.Reason, CauseEventIDs: ids, RulesVersion: t.RulesVersion}
}

func (s *Server) customerWithExplain(r *http.Request, id string) (CustomerJSON, error) {
	st, err := s.db()
	if err != nil {
		return CustomerJSON{}, err
	}
	// The two reads are independent: run them side by side so a lookup
	// costs one round trip, not two.
	type result struct {
		ts  []warehouse.Transition
		err error
	}
	done := make(chan result, 1)
	go func() {
		ts, err := st.Transitions(r.Context(), id)
		done <- result{ts, err}
	}()
	c, err := st.Customer(r.Context(), id)
	tr := <-done
	if err != nil {
		return CustomerJSON{}, err
	}
	if tr.err != nil {
		return CustomerJSON{}, tr.err
	}
	ts := tr.ts
	out := customerJSON(c)
	ex := &ExplainJSON{Stage: c.Stage, RulesVersion: c.RulesVersion, Transitions: make([]TransitionJSON, 0, len(ts))}
	for _, t := range ts {
		ex.Transitions = append(ex.Transitions, transitionJSON(t))
	}
	out.Explain = ex
	return out, nil
}

func (s *Server) getCustomer(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := validID("id", id); err != nil {
		return err
	}
	if err := checkParams(r.URL.Query()); err != nil {
		return err
	}
	c, err := s.customerWithExplain(r, id)
	if err != nil {
		return err
	}
	return writeJSON(w, c)
}

// TimelineItem is a touchpoint or a stage change, in time order.
type TimelineItem struct {
	Type        string          `json:"type"` // "touchpoint" or "stage_change"
	At          time.Time       `json:"at"`
	Touchpoint  *TouchpointJSON `json:"touchpoint,omitempty"`
	StageChange *TransitionJSON `json:"stage_change,omitempty"`
}

// TouchpointJSON is one stored event; empty payload fields are omitted.
type TouchpointJSON struct {
	ID          string `json:"id"`
	Source      string `json:"source"`
	Type        string `json:"type"`
	Kind        string `json:"kind"`
	StreamSeq   uint64 `json:"stream_seq"`
	AccountID   string `json:"account_id,omitempty"`
	ContactID   string `json:"contact_id,omitempty"`
	Channel     string `json:"channel,omitempty"`
	Campaign    string `json:"campaign,omitempty"`
	Status      string `json:"status,omitempty"`
	AmountCents int64  `json:"amount_cents,omitempty"`
	Currency    string `json:"currency,omitempty"`
	Score       *uint8 `json:"score,omitempty"`
	QuoteID     string `json:"quote_id,omitempty"`
	OrderID     string `json:"order_id,omitempty"`
	ComplaintID string `json:"complaint_id,omitempty"`
	SurveyID    string `json:"survey_id,omitempty"`
	Category    string `json:"category,omitempty"`
	Severity    string `json:"severity,omitempty"`
}

// TimelinePage is one page of a customer's timeline.
type TimelinePage struct {
	CustomerID string         `json:"customer_id"`
	Items      []TimelineItem `json:"items"`
	NextCursor *string        `json:"next_cursor"`
}

func (s *Server) timeline(r *http.Request, id string, q map[string][]string) (TimelinePage, error) {
	if err := validID("id", id); err != nil {
		return TimelinePage{}, err
	}
	if err := checkParams(q, "limit", "cursor"); err != nil {
		return TimelinePage{}, err
	}
	limit, err := parseLimit(q, s.set.DefaultPageSize, s.set.MaxPageSize)
	if err != nil {
		return TimelinePage{}, err
	}
	var cursor string
	if v := q["cursor"]; len(v) > 0 {
		cursor = v[0]
	}
	after, err := parseTimelineCursor(cursor)
	if err != nil {
		return TimelinePage{}, err
	}
	st, err := s.db()
	if err != nil {
		return TimelinePage{}, err
	}
	// One more than the page tells whether another page follows.
	tps, err := st.Timeline(r.Context(), id, after, limit+1)
	if err != nil {
		return TimelinePage{}, err
	}
	ts, err := st.Transitions(r.Context(), id)
	if err != nil {
		return TimelinePage{}, err
	}
	more := len(tps) > limit
	if more {
		tps = tps[:limit]
	}
	if after == nil && len(tps) == 0 && len(ts) == 0 {
		return TimelinePage{}, warehouse.ErrNotFound
	}
	page := TimelinePage{CustomerID: id, Items: mergeTimeline(tps, ts, after, more)}
	if more {
		last := tps[len(tps)-1]
		c := timelineCursor(warehouse.TimelinePos{TimeMs: last.TimeMs, Seq: last.StreamSeq})
		page.NextCursor = &c
	}
	return page, nil
}

// mergeTimeline puts the stage changes that belong to this page between its
// touchpoints. A change is keyed by its time, or by the latest of its cause
// events on this page if later: on 18.16 the transition time has whole
// seconds while events keep milliseconds, and a change must never show
// before the event that caused it. A page owns the changes keyed in
// (after, last touchpoint], the last page everything after.
func mergeTimeline(tps []warehouse.Touchpoint, ts []warehouse.Transition, after *warehouse.TimelinePos, more bool) []TimelineItem {
	onPage := make(map[string]int64, len(tps))
	for _, t := range tps {
		onPage[t.ID] = t.TimeMs
	}
	type keyed struct {
		ms   int64
		kind int // 0 touchpoint, 1 change: a change follows its cause at the same ms
		seq  uint64
		item TimelineItem
	}
	var items []keyed
	for _, t := range tps {
		tj := touchpointJSON(t)
		items = append(items, keyed{t.TimeMs, 0, t.StreamSeq, TimelineItem{Type: "touchpoint", At: t.Time, Touchpoint: &tj}})
	}
	lower := int64(-1 << 63)
	if after != nil {
		lower = after.TimeMs
	}
	upper := int64(1<<63 - 1)
	if more && len(tps) > 0 {
		upper = tps[len(tps)-1].TimeMs
	}
	for _, t := range ts {
		key := t.At.UnixMilli()
		for _, id := range t.CauseEventIDs {
			if ms, ok := onPage[id]; ok && ms > key {
				key = ms
			}
		}
		if key <= lower && after != nil || key > upper {
			continue
		}
		tj := transitionJSON(t)
		items = append(items, keyed{key, 1, uint64(t.Idx), TimelineItem{Type: "stage_change", At: tj.At, StageChange: &tj}})
	}
	sort.SliceStable(items, func(i, j int) bool {
		a, b := items[i], items[j]
		if a.ms != b.ms {
			return a.ms < b.ms
		}
		if a.kind != b.kind {
			return a.kind < b.kind
		}
		return a.seq < b.seq
	})
	out := make([]TimelineItem, len(items))
	for i, it := range items {
		out[i] = it.item
	}
	return out
}

func touchpointJSON(t warehouse.Touchpoint) TouchpointJSON {
	return TouchpointJSON{ID: t.ID, Source: t.Source, Type: t.Type, Kind: t.Kind, StreamSeq: t.StreamSeq,
		AccountID: t.AccountID, ContactID: t.ContactID, Channel: t.Channel, Campaign: t.Campaign, Status: t.Status,
		AmountCents: t.AmountCents, Currency: t.Currency, Score: t.Score, QuoteID: t.QuoteID, OrderID: t.OrderID,
		ComplaintID: t.ComplaintID, SurveyID: t.SurveyID, Category: t.Category, Severity: t.Severity}
}

func (s *Server) getTimeline(w http.ResponseWriter, r *http.Request) error {
	p, err := s.timeline(r, r.PathValue("id"), r.URL.Query())
	if err != nil {
		return err
	}
	return writeJSON(w, p)
}

// CustomerPage is one page of a customer list.
type CustomerPage struct {
	Items      []CustomerJSON `json:"items"`
	NextCursor *string        `json:"next_cursor"`
}

func (s *Server) customers(r *http.Request, q map[string][]string) (CustomerPage, error) {
	if err := checkParams(q, "stage", "at_risk", "account", "limit", "cursor"); err != nil {
		return CustomerPage{}, err
	}
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	f := warehouse.CustomerFilter{Stage: get("stage"), Account: get("account")}
	if f.Stage != "" && !oneOf(f.Stage, Stages) {
		return CustomerPage{}, badParam("stage", "must be one of prospect, new_customer, loyal_customer, ex_customer")
	}
	if f.Account != "" {
		if err := validID("account", f.Account); err != nil {
			return CustomerPage{}, err
		}
	}
	var err error
	if f.AtRisk, err = parseBool(q, "at_risk"); err != nil {
		return CustomerPage{}, err
	}
	if f.Limit, err = parseLimit(q, s.set.DefaultPageSize, s.set.MaxPageSize); err != nil {
		return CustomerPage{}, err
	}
	if c := get("cursor"); c != "" {
		parts, err := decodeCursor(c, 1)
		if err != nil {
			return CustomerPage{}, err
		}
		f.After = parts[0]
	}
	st, err := s.db()
	if err != nil {
		return CustomerPage{}, err
	}
	want := f.Limit
	f.Limit++
	cs, err := st.Customers(r.Context(), f)
	if err != nil {
		return CustomerPage{}, err
	}
	page := CustomerPage{Items: make([]CustomerJSON, 0, len(cs))}
	if len(cs) > want {
		cs = cs[:want]
		c := encodeCursor(cs[want-1].CustomerID)
		page.NextCursor = &c
	}
	for _, c := range cs {
		page.Items = append(page.Items, customerJSON(c))
	}
	return page, nil
}

func (s *Server) listCustomers(w http.ResponseWriter, r *http.Request) error {
	p, err := s.customers(r, r.URL.Query())
	if err != nil {
		return err
	}
	return writeJSON(w, p)
}

func oneOf(v string, set []string) bool {
	for _, s := range set {
		if v == s {
			return true
		}
	}
	return false
}
