package account

import (
	"time"

	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/touchpoint"
)

// Change says what an apply changed, for the caller's writes and derived
// events.
type Change struct {
	// Facts is true when the state gained a fact and must be saved.
	Facts bool
	// Stage is the stage fold's change (history indexes, from/to).
	Stage journey.Change
	// Before and After are the flags the derived events report.
	Before, After Flags
}

// Changed reports whether anything needs writing.
func (c *Change) Changed() bool { return c.Facts || c.Stage.Changed() || c.Before != c.After }

// StageChanged reports a change of the current stage.
func (c *Change) StageChanged() bool { return c.Before.Stage != c.After.Stage }

// GapOpened reports the coverage gap turning true.
func (c *Change) GapOpened() bool { return c.After.Gap && !c.Before.Gap }

// BecameAtRisk reports at_risk turning true.
func (c *Change) BecameAtRisk() bool { return c.After.AtRisk && !c.Before.AtRisk }

// Flags are the comparable summary of a view.
type Flags struct {
	Stage  journey.Stage `json:"stage"`
	Gap    bool          `json:"gap"`
	AtRisk bool          `json:"at_risk"`
	// Coverage is the covered roles joined by commas: a change of it is
	// worth a warehouse row, not a derived event.
	Coverage string `json:"coverage,omitempty"`
}

// Apply adds events and placements to the account's state and re-derives
// what they change at now. An event that names another account only moves
// its contact's placement; an event without an account_id is ignored.
// places are placements the caller learnt elsewhere (a contact's latest
// account, from its other events). Applying what the state already holds
// changes nothing, and the result does not depend on the order of events
// and placements across calls.
func (b *Rulebook) Apply(s *State, now time.Time, events []Event, places map[string]Placement) Change {
	// Before is what the last apply derived (at its now), so that a change
	// that time alone made (a gap opening) shows up in this one's Change.
	ch := Change{Before: s.Flags}
	stage := make([]journey.Event, 0, len(events))
	for i := range events {
		e := &events[i]
		if e.AccountID == "" {
			continue
		}
		m := e.mark()
		k := ContactKey(e.CustomerID, e.ContactID)
		if b.place(s, k, e.CustomerID, e.ContactID, Placement{AccountID: e.AccountID, Mark: m}) {
			ch.Facts = true
		}
		if e.AccountID != s.AccountID {
			continue
		}
		stage = append(stage, stageEvent(e))
		if s.addFacts(s.Members[k], e, m) {
			ch.Facts = true
		}
	}
	for k, p := range places {
		c, ct := SplitContactKey(k)
		if b.place(s, k, c, ct, p) {
			ch.Facts = true
		}
	}
	ch.Stage = b.stage.Apply(s.Stage, now, stage...)
	ch.Facts = ch.Facts || ch.Stage.Facts
	ch.After = b.flags(s, now)
	s.Flags = ch.After
	return ch
}

// Advance re-derives the time-dependent parts at now: what a sweep calls
// once [View.Next] has passed.
func (b *Rulebook) Advance(s *State, now time.Time) Change { return b.Apply(s, now, nil, nil) }

// place merges a placement into the contact's, creating the member: a
// contact placed elsewhere is still recorded, so that an older event for
// this account arriving later does not make it a member again.
func (b *Rulebook) place(s *State, k, customerID, contactID string, p Placement) bool {
	m := s.Members[k]
	if m == nil {
		if s.Members == nil {
			s.Members = make(map[string]*Member, 4)
		}
		m = &Member{CustomerID: customerID, ContactID: contactID}
		s.Members[k] = m
	}
	// Equal marks (two sources reusing an id at one instant) keep the
	// smaller account id, so that the merge stays commutative.
	if m.Placed == nil || m.Placed.Mark.Before(p.Mark) ||
		!p.Mark.Before(m.Placed.Mark) && p.AccountID < m.Placed.AccountID {
		m.Placed = &p
		return true
	}
	return false
}

// addFacts merges one event that names this account into the contact's
// facts. Every merge keeps the earliest or latest by mark.
func (s *State) addFacts(mb *Member, e *Event, m journey.Mark) bool {
	changed := false
	if earlierOf(mb.FirstTouch, m) {
		mb.FirstTouch = &m
		changed = true
	}
	if later(mb.LastTouch, m) {
		mb.LastTouch = &m
		changed = true
	}
	if e.DMURole != "" && later(mb.RoleMark, m) {
		mb.Role, mb.RoleMark = e.DMURole, &m
		changed = true
	}
	switch e.Kind {
	case touchpoint.KindSurvey:
		if mb.Survey == nil || mb.Survey.Mark.Before(m) {
			mb.Survey = &journey.Answer{Mark: m, Score: e.Score, Comment: e.Comment, ContactID: e.ContactID}
			changed = true
		}
	case touchpoint.KindComplaint:
		if e.ComplaintID == "" {
			break
		}
		if mb.Complaints == nil {
			mb.Complaints = make(map[string]*journey.ComplaintFacts, 1)
		}
		c := mb.Complaints[e.ComplaintID]
		if c == nil {
			c = &journey.ComplaintFacts{}
			mb.Complaints[e.ComplaintID] = c
		}
		switch e.Status {
		case journey.StatusOpened:
			if earlierOf(c.Opened, m) {
				c.Opened = &m
				changed = true
			}
		case journey.StatusResolved:
			if earlierOf(c.Resolved, m) {
				c.Resolved = &m
				changed = true
			}
		}
	case touchpoint.KindQuote:
		changed = s.addQuote(e, m) || changed
	}
	return changed
}

func (s *State) addQuote(e *Event, m journey.Mark) bool {
	if e.QuoteID == "" {
		return false
	}
	k := ContactKey(e.CustomerID, e.QuoteID)
	q := s.Quotes[k]
	if q == nil {
		if s.Quotes == nil {
			s.Quotes = make(map[string]*QuoteFacts, 2)
		}
		q = &QuoteFacts{CustomerID: e.CustomerID, QuoteID: e.QuoteID}
		s.Quotes[k] = q
	}
	switch e.Status {
	case QuoteSent:
		if earlierOf(q.Sent, m) {
			q.Sent = &m
			return true
		}
	case QuoteAccepted, QuoteRejected, QuoteExpired:
		// The earliest closing wins; at the same mark the status breaks
		// the tie, so that the merge stays commutative.
		if earlierOf(q.Closed, m) || !m.Before(*q.Closed) && !q.Closed.Before(m) && e.Status < q.ClosedAs {
			q.Closed, q.ClosedAs = &m, e.Status
			return true
		}
	}
	return false
}
