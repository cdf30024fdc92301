package journey

import (
	"slices"
	"sort"
	"time"

	"github.com/klantreis/journey/pkg/touchpoint"
)

// Change says what an apply changed, for the caller's writes and derived
// events.
type Change struct {
	// Facts is true when the state gained a fact and must be saved.
	Facts bool
	// From and To are the current stage before and after.
	From, To Stage
	// HistoryFrom is the first index of the history that is new or was
	// rewritten, -1 when the history is unchanged. OldHistoryLen is the
	// length before: indexes in [len(History), OldHistoryLen) are gone.
	HistoryFrom   int
	OldHistoryLen int
	// Refolded is true when a late event made the whole history re-derive.
	Refolded bool
	// Satisfaction before and after; changed when they differ.
	SatisfactionBefore, SatisfactionAfter Satisfaction
	// MarketingBefore and MarketingAfter: the customer's marketing consent
	// before and after.
	MarketingBefore, MarketingAfter bool
}

// MarketingGranted reports marketing consent turning from no to yes.
func (c *Change) MarketingGranted() bool { return c.MarketingAfter && !c.MarketingBefore }

// StageChanged reports a change of the current stage.
func (c *Change) StageChanged() bool { return c.From != c.To }

// SatisfactionChanged reports a change of the satisfaction.
func (c *Change) SatisfactionChanged() bool { return c.SatisfactionBefore != c.SatisfactionAfter }

// BecameAtRisk reports at_risk turning true.
func (c *Change) BecameAtRisk() bool {
	return c.SatisfactionAfter.AtRisk && !c.SatisfactionBefore.AtRisk
}

// Changed reports whether anything needs writing.
func (c *Change) Changed() bool { return c.Facts || c.HistoryFrom >= 0 }

type pointKind uint8

// Point kinds, in the order they apply at the same mark.
const (
	ptTouch pointKind = iota
	ptPlaced
	ptCancelled
	ptOffboard
)

// point is a fact that can move the stage, at its mark.
type point struct {
	m     Mark
	kind  pointKind
	order string
}

func (p *point) before(o *point) bool {
	// Compare, not ==: equal instants may differ in representation
	// (location, monotonic reading) after a decode.
	if p.m.Before(o.m) {
		return true
	}
	if o.m.Before(p.m) {
		return false
	}
	return p.kind < o.kind
}

// Apply adds events to the state and re-derives what they change, with now
// as the reference for the inactivity rule. Applying an event the state
// already holds changes nothing, and the result does not depend on the
// order of the events across calls.
func (b *Rulebook) Apply(s *State, now time.Time, events ...Event) Change {
	if len(events) > 1 && !sort.SliceIsSorted(events, func(i, j int) bool { return events[i].mark().Before(events[j].mark()) }) {
		events = slices.Clone(events)
		slices.SortFunc(events, func(x, y Event) int {
			mx, my := x.mark(), y.mark()
			if mx.Before(my) {
				return -1
			}
			if my.Before(mx) {
				return 1
			}
			return 0
		})
	}
	if len(s.Revisions) > 0 {
		events = s.withoutStale(events)
	}
	ch := Change{From: s.Stage(), HistoryFrom: -1, OldHistoryLen: len(s.History)}
	satisfactionMayChange := false
	for i := range events {
		// A consent answer may make a customer at risk reportable.
		if k := events[i].Kind; k == touchpoint.KindSurvey || k == touchpoint.KindComplaint || len(events[i].Consent) > 0 {
			satisfactionMayChange = true
			break
		}
	}
	if satisfactionMayChange {
		ch.SatisfactionBefore = s.Satisfaction()
	}
	ch.MarketingBefore = s.Consents(touchpoint.PurposeMarketing)

	// The tail depends on now; drop it and add it back at the end.
	var oldTail *Transition
	if len(s.History) > s.Fold.Len {
		t := s.History[s.Fold.Len]
		oldTail = &t
		s.History = s.History[:s.Fold.Len]
	}
	oldFoldLen := s.Fold.Len
	var oldHistory []Transition // kept only when a refold rewrites history

	refold := false
	var pts [2]point
	for i := range events {
		n, changed := s.addFacts(&events[i], &pts)
		ch.Facts = ch.Facts || changed
		for j := 0; j < n && !refold; j++ {
			if !s.Fold.Last.IsZero() && !s.Fold.Last.Before(pts[j].m) {
				refold = true
				break
			}
			b.process(s, &pts[j])
		}
	}
	if refold {
		oldHistory = slices.Clone(s.History)
		if oldTail != nil {
			oldHistory = append(oldHistory, *oldTail)
		}
		b.refold(s)
		ch.Refolded = true
	}
	b.tail(s, now)

	// Work out the first rewritten index.
	if refold {
		ch.HistoryFrom = firstDiff(oldHistory, s.History)
	} else {
		ch.HistoryFrom = -1
		if len(s.History) > oldFoldLen {
			// New fold transitions start at oldFoldLen; the old tail may equal
			// the first of them (e.g. inactivity seen by the sweep before).
			if oldTail != nil && s.History[oldFoldLen].equal(oldTail) {
				if len(s.History) > oldFoldLen+1 {
					ch.HistoryFrom = oldFoldLen + 1
				}
			} else {
				ch.HistoryFrom = oldFoldLen
			}
		} else if oldTail != nil {
			ch.HistoryFrom = oldFoldLen // the tail went away
		}
	}
	ch.To = s.Stage()
	if satisfactionMayChange {
		ch.SatisfactionAfter = s.Satisfaction()
	}
	ch.MarketingAfter = s.Consents(touchpoint.PurposeMarketing)
	return ch
}

// withoutStale drops older versions of events s holds a correction of.
func (s *State) withoutStale(events []Event) []Event {
	for i := range events {
		if s.stale(&events[i]) {
			kept := make([]Event, 0, len(events))
			for j := range events {
				if !s.stale(&events[j]) {
					kept = append(kept, events[j])
				}
			}
			return kept
		}
	}
	return events
}

// Advance applies only the inactivity rule at now: what the sweep calls for
// customers whose expiry has passed.
func (b *Rulebook) Advance(s *State, now time.Time) Change {
	return b.Apply(s, now)
}

// Rederive rebuilds the whole history from the facts, as a late event does.
// The result equals what incremental applies produced; tests use it to check
// exactly that.
func (b *Rulebook) Rederive(s *State, now time.Time) {
	b.refold(s)
	b.tail(s, now)
}

func firstDiff(a, b []Transition) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if !a[i].equal(&b[i]) {
			return i
		}
	}
	if len(a) == len(b) {
		return -1
	}
	return n
}

// addFacts merges one event into the facts. It returns the stage points it
// created (at most 2) and whether any fact changed. Every merge keeps the
// earliest or latest by mark, so merging is idempotent and commutative.
func (s *State) addFacts(e *Event, pts *[2]point) (int, bool) {
	m := e.mark()
	n := 0
	changed := false
	if fm, ok := earlier(s.FirstTouch, m); ok {
		s.FirstTouch = &fm
		pts[n] = point{m: m, kind: ptTouch}
		n++
		changed = true
	}
	if e.Time.After(s.LastTouch) {
		s.LastTouch = e.Time
		changed = true
	}
	if e.Revision > 0 && e.Revision > s.Revisions[e.key()] {
		if s.Revisions == nil {
			s.Revisions = make(map[string]uint32, 4)
		}
		s.Revisions[e.key()] = e.Revision
		changed = true
	}
	if len(e.Consent) > 0 && s.addConsent(e, m) {
		changed = true
	}
	if e.AccountID != "" && (s.AccountMark == nil || s.AccountMark.Before(m)) {
		s.AccountID = e.AccountID
		s.AccountMark = &m
		changed = true
	}
	pt, hasPoint, kindChanged := s.addKindFacts(e, m)
	if hasPoint {
		pts[n] = pt
		n++
	}
	if kindChanged {
		changed = true
	}
	// A touch point is redundant with another point of the same event, and
	// two points of one mark would look like a replay to the caller.
	if n == 2 {
		pts[0] = pts[1]
		n = 1
	}
	return n, changed
}

// addKindFacts merges the facts only an event of its kind carries. It
// returns the stage point it created, if any, and whether a fact changed.
func (s *State) addKindFacts(e *Event, m Mark) (pt point, hasPoint, changed bool) {
	switch e.Kind {
	case touchpoint.KindVisit:
		if fm, ok := earlier(s.FirstVisit, m); ok {
			s.FirstVisit = &fm
			changed = true
		}
	case touchpoint.KindQuote:
		if fm, ok := earlier(s.FirstQuote, m); ok {
			s.FirstQuote = &fm
			changed = true
		}
	case touchpoint.KindOrder:
		return s.addOrder(e, m)
	case touchpoint.KindComplaint:
		changed = s.addComplaint(e, m)
	case touchpoint.KindSurvey:
		changed = s.addSurvey(e, m)
	case touchpoint.KindOffboarded:
		return s.addOffboard(e, m)
	}
	return pt, hasPoint, changed
}

// addOrder keeps the earliest placed and cancelled marks of the event's
// order; an order event without an order ID has nothing to merge.
func (s *State) addOrder(e *Event, m Mark) (pt point, hasPoint, changed bool) {
	if e.OrderID == "" {
		return pt, false, false
	}
	if s.Orders == nil {
		s.Orders = make(map[string]*OrderFacts, 4)
	}
	o := s.Orders[e.OrderID]
	if o == nil {
		o = &OrderFacts{}
		s.Orders[e.OrderID] = o
	}
	var slot **Mark
	var kind pointKind
	switch e.Status {
	case StatusPlaced:
		slot, kind = &o.Placed, ptPlaced
	case StatusCancelled:
		slot, kind = &o.Cancelled, ptCancelled
	}
	if slot != nil {
		if fm, ok := earlier(*slot, m); ok {
			*slot = &fm
			return point{m: m, kind: kind, order: e.OrderID}, true, true
		}
	}
	return pt, false, false
}

// addComplaint keeps the earliest opened and resolved marks of the
// event's complaint; one without a complaint ID has nothing to merge.
func (s *State) addComplaint(e *Event, m Mark) bool {
	if e.ComplaintID == "" {
		return false
	}
	if s.Complaints == nil {
		s.Complaints = make(map[string]*ComplaintFacts, 2)
	}
	c := s.Complaints[e.ComplaintID]
	if c == nil {
		c = &ComplaintFacts{}
		s.Complaints[e.ComplaintID] = c
	}
	changed := false
	switch e.Status {
	case StatusOpened:
		if fm, ok := earlier(c.Opened, m); ok {
			c.Opened = &fm
			changed = true
		}
	case StatusResolved:
		if fm, ok := earlier(c.Resolved, m); ok {
			c.Resolved = &fm
			changed = true
		}
	}
	return changed
}

// addSurvey counts the response once by its source and ID, and keeps the
// answer with the latest mark.
func (s *State) addSurvey(e *Event, m Mark) bool {
	changed := false
	key := e.Source + " " + e.ID
	if _, seen := s.Responses[key]; !seen {
		if s.Responses == nil {
			s.Responses = make(map[string]struct{}, 2)
		}
		s.Responses[key] = struct{}{}
		changed = true
	}
	if s.Survey == nil || s.Survey.Mark.Before(m) {
		s.Survey = &Answer{Mark: m, Score: e.Score, Comment: e.Comment, ContactID: e.ContactID}
		changed = true
	}
	return changed
}

// addOffboard records an offboarding once by its source and ID, with its
// stage point the first time.
func (s *State) addOffboard(e *Event, m Mark) (pt point, hasPoint, changed bool) {
	key := e.Source + " " + e.ID
	if _, seen := s.Offboards[key]; seen {
		return pt, false, false
	}
	if s.Offboards == nil {
		s.Offboards = make(map[string]Mark, 1)
	}
	s.Offboards[key] = m
	return point{m: m, kind: ptOffboard}, true, true
}

// refold re-derives the history from all facts.
func (b *Rulebook) refold(s *State) {
	s.History = s.History[:0]
	s.Fold = Fold{Stage: StageNone}
	pts := make([]point, 0, 1+2*len(s.Orders)+len(s.Offboards))
	if s.FirstTouch != nil {
		pts = append(pts, point{m: *s.FirstTouch, kind: ptTouch})
	}
	for id, o := range s.Orders {
		if o.Placed != nil {
			pts = append(pts, point{m: *o.Placed, kind: ptPlaced, order: id})
		}
		if o.Cancelled != nil {
			pts = append(pts, point{m: *o.Cancelled, kind: ptCancelled, order: id})
		}
	}
	for _, m := range s.Offboards {
		pts = append(pts, point{m: m, kind: ptOffboard})
	}
	slices.SortFunc(pts, func(x, y point) int {
		if x.before(&y) {
			return -1
		}
		if y.before(&x) {
			return 1
		}
		return 0
	})
	for i := range pts {
		b.process(s, &pts[i])
	}
}

func (b *Rulebook) transition(s *State, to Stage, at time.Time, r Reason, causes ...string) {
	s.History = append(s.History, Transition{From: s.Fold.Stage, To: to, At: at, Reason: r, Causes: causes, RulesVersion: b.version})
	s.Fold.Stage = to
}

func customer(st Stage) bool { return st == StageNewCustomer || st == StageLoyalCustomer }

// process advances the fold over one point.
func (b *Rulebook) process(s *State, p *point) {
	f := &s.Fold
	pm := p.m // the fold keeps pointers to marks; p is reused by callers
	if customer(f.Stage) && f.LastCounted != nil {
		// "Unless a counted order has a time strictly before" the expiry: a
		// point at the expiry itself comes after the customer left.
		if exp := f.LastCounted.At.Add(b.rules.InactiveAfter); !exp.After(p.m.At) {
			b.transition(s, StageExCustomer, exp, ReasonInactive, f.LastCounted.ID)
		}
	}
	if f.Stage == StageNone {
		b.transition(s, StageProspect, p.m.At, ReasonFirstTouchpoint, p.m.ID)
	}
	switch p.kind {
	case ptPlaced:
		o := s.Orders[p.order]
		if !o.counted(p.m) {
			break // cancelled before it was placed: it never counts
		}
		f.LastCounted = &pm
		f.Offboarded = nil
		switch f.Stage {
		case StageProspect:
			f.PeriodStart = &pm
			b.transition(s, StageNewCustomer, p.m.At, ReasonFirstOrder, p.m.ID)
		case StageExCustomer:
			f.PeriodStart = &pm
			b.transition(s, StageNewCustomer, p.m.At, ReasonReactivated, p.m.ID)
		case StageNewCustomer:
			if ids := b.loyalWindowEndingAt(s, p.m); ids != nil {
				b.transition(s, StageLoyalCustomer, p.m.At, ReasonRepeatOrders, ids...)
			}
		}
	case ptCancelled:
		o := s.Orders[p.order]
		if o.Placed == nil || p.m.Before(*o.Placed) {
			break // nothing counted yet; the placement will see the cancellation
		}
		b.afterCancel(s, p)
	case ptOffboard:
		f.Offboarded = &pm
		if customer(f.Stage) {
			b.transition(s, StageExCustomer, p.m.At, ReasonOffboarded, p.m.ID)
		}
	}
	f.Last = p.m
	f.Len = len(s.History)
}

// afterCancel makes the stage follow the facts once an order stopped
// counting at p.
func (b *Rulebook) afterCancel(s *State, p *point) {
	f := &s.Fold
	var last *Mark
	inPeriod := 0
	for _, o := range s.Orders {
		if !o.counted(p.m) {
			continue
		}
		if last == nil || last.Before(*o.Placed) {
			last = o.Placed
		}
		if f.PeriodStart != nil && !o.Placed.Before(*f.PeriodStart) {
			inPeriod++
		}
	}
	f.LastCounted = last
	if !customer(f.Stage) {
		return
	}
	switch {
	case last == nil:
		f.PeriodStart = nil
		b.transition(s, StageProspect, p.m.At, ReasonOrderCancelled, p.m.ID)
	case inPeriod == 0:
		// The order that won the customer (back) is gone: they are what they
		// were before it, an ex_customer (inactive or offboarded).
		f.PeriodStart = nil
		b.restoreOffboarded(s, p.m, last)
		b.transition(s, StageExCustomer, p.m.At, ReasonOrderCancelled, p.m.ID)
	case !last.At.Add(b.rules.InactiveAfter).After(p.m.At):
		b.transition(s, StageExCustomer, p.m.At, ReasonOrderCancelled, p.m.ID)
	case f.Stage == StageLoyalCustomer && !b.loyalHolds(s, p.m):
		b.transition(s, StageNewCustomer, p.m.At, ReasonOrderCancelled, p.m.ID)
	}
}

// restoreOffboarded brings back the latest offboarding up to m that no
// counted order placed up to m followed.
func (b *Rulebook) restoreOffboarded(s *State, m Mark, lastCounted *Mark) {
	var latest *Mark
	for _, ob := range s.Offboards {
		if ob.Before(m) && (latest == nil || latest.Before(ob)) {
			o := ob
			latest = &o
		}
	}
	if latest != nil && (lastCounted == nil || lastCounted.Before(*latest)) {
		s.Fold.Offboarded = latest
	}
}

// periodOrders returns the placements counted at m within the current
// period, sorted by mark.
func (b *Rulebook) periodOrders(s *State, m Mark, from time.Time) []Mark {
	var out []Mark
	for _, o := range s.Orders {
		if !o.counted(m) || s.Fold.PeriodStart != nil && o.Placed.Before(*s.Fold.PeriodStart) || o.Placed.At.Before(from) {
			continue
		}
		out = append(out, *o.Placed)
	}
	slices.SortFunc(out, func(x, y Mark) int {
		if x.Before(y) {
			return -1
		}
		if y.Before(x) {
			return 1
		}
		return 0
	})
	return out
}

// loyalWindowEndingAt returns the ids of the counted orders in the window
// that ends at the placement m, when they are at least LoyalOrders. A span
// holding enough orders first appears when its last order is placed, so
// checking the window ending at each placement finds the first one.
func (b *Rulebook) loyalWindowEndingAt(s *State, m Mark) []string {
	from := m.At.Add(-b.rules.LoyalWindow)
	n := 0
	for _, o := range s.Orders {
		if o.counted(m) && !o.Placed.At.Before(from) && (s.Fold.PeriodStart == nil || !o.Placed.Before(*s.Fold.PeriodStart)) {
			n++
		}
	}
	if n < b.rules.LoyalOrders {
		return nil
	}
	ms := b.periodOrders(s, m, from)
	ids := make([]string, len(ms))
	for i := range ms {
		ids[i] = ms[i].ID
	}
	return ids
}

// loyalHolds reports whether some LoyalWindow span holds LoyalOrders
// counted orders of the current period at m.
func (b *Rulebook) loyalHolds(s *State, m Mark) bool {
	ms := b.periodOrders(s, m, time.Time{})
	k := b.rules.LoyalOrders
	for i := 0; i+k-1 < len(ms); i++ {
		if ms[i+k-1].At.Sub(ms[i].At) <= b.rules.LoyalWindow {
			return true
		}
	}
	return false
}

// tail adds the inactivity transition that now has reached, and sets the
// expiry the sweep indexes.
func (b *Rulebook) tail(s *State, now time.Time) {
	s.History = s.History[:s.Fold.Len]
	s.Expires = time.Time{}
	f := &s.Fold
	if !customer(f.Stage) || f.LastCounted == nil {
		return
	}
	exp := f.LastCounted.At.Add(b.rules.InactiveAfter)
	if exp.After(now) {
		s.Expires = exp
		return
	}
	s.History = append(s.History, Transition{From: f.Stage, To: StageExCustomer, At: exp, Reason: ReasonInactive,
		Causes: []string{f.LastCounted.ID}, RulesVersion: b.version})
}
