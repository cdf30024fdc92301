package journey

import (
	"time"

	"github.com/klantreis/journey/pkg/touchpoint"
)

// Corrections (GDPR art. 16, docs/privacy.md "Rectification"): an event is
// corrected by sending the same (source, id) again with a higher revision.
// A correction may change anything, the kind included (an order that was
// a quote), so merging it into the facts would keep what it corrects: the
// facts only grow. A correction therefore re-derives the customer from
// the current version of every one of their events ([Rulebook.Rebuild]);
// an older version that arrives later is stale and changes nothing.

// Current keeps, of every (source, id) in events, the version with the
// highest revision (of equal revisions, the later one in events), in the
// order of their first appearance.
func Current(events []Event) []Event {
	idx := make(map[string]int, len(events))
	out := make([]Event, 0, len(events))
	for i := range events {
		k := events[i].key()
		j, ok := idx[k]
		switch {
		case !ok:
			idx[k] = len(out)
			out = append(out, events[i])
		case events[i].Revision >= out[j].Revision:
			out[j] = events[i]
		}
	}
	return out
}

// Corrects reports whether e supersedes what s holds of its (source, id):
// its revision is above the highest s has seen. An original (revision 0)
// never does.
func (s *State) Corrects(e *Event) bool {
	// An original is the common case: no key built, no lookup.
	return e.Revision > 0 && e.Revision > s.Revisions[e.key()]
}

// stale reports an older version of an event s holds a correction of.
func (s *State) stale(e *Event) bool { return e.Revision < s.Revisions[e.key()] }

// Rebuild re-derives a customer from history, every event of theirs the
// log holds (in any order, superseded versions included), with now as the
// reference for the inactivity rule. It returns the new state, which
// replaces old, and the change from old to it: the history rewritten from
// its first difference, the satisfaction before and after.
func (b *Rulebook) Rebuild(old *State, now time.Time, history []Event) (*State, Change) {
	s := NewState(old.CustomerID)
	b.Apply(s, now, Current(history)...) // records the revisions it applies
	ch := Change{
		Facts: true, From: old.Stage(), To: s.Stage(), OldHistoryLen: len(old.History), Refolded: true,
		HistoryFrom:        firstDiff(old.History, s.History),
		SatisfactionBefore: old.Satisfaction(), SatisfactionAfter: s.Satisfaction(),
		MarketingBefore: old.Consents(touchpoint.PurposeMarketing), MarketingAfter: s.Consents(touchpoint.PurposeMarketing),
	}
	return s, ch
}
