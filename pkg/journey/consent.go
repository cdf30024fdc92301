package journey

import (
	"github.com/klantreis/journey/pkg/touchpoint"
)

// ConsentFact is a customer's answer for one purpose: given (Granted) or
// withdrawn, at the mark of the touchpoint that carried it.
type ConsentFact struct {
	Mark
	Granted bool `json:"granted"`
}

// addConsent keeps, per purpose, the answer with the latest mark: merging
// is idempotent and commutative like every other fact, so a late or
// replayed answer cannot undo a newer one.
func (s *State) addConsent(e *Event, m Mark) bool {
	changed := false
	for _, a := range e.Consent {
		cur, ok := s.Consent[a.Purpose]
		if ok && !cur.Mark.Before(m) {
			continue
		}
		if s.Consent == nil {
			s.Consent = make(map[touchpoint.Purpose]ConsentFact, 2)
		}
		s.Consent[a.Purpose] = ConsentFact{Mark: m, Granted: a.Granted}
		changed = true
	}
	return changed
}

// Consents reports whether the customer's latest answer for purpose is a
// grant. Consent is opt-in (GDPR art. 6(1)(a), 7): no answer is no
// consent, and a withdrawal counts from the moment it is applied, for
// everything emitted afterwards.
func (s *State) Consents(p touchpoint.Purpose) bool {
	c, ok := s.Consent[p]
	return ok && c.Granted
}

// MarketingKinds are the derived event kinds that exist for marketing
// automation: they are emitted only for customers who consent to
// marketing.
func MarketingKinds() []touchpoint.Kind { return []touchpoint.Kind{touchpoint.KindAtRisk} }

// MayEmit reports whether a derived event of kind k may go out for the
// customer: marketing events need marketing consent; the others (stage and
// satisfaction changes, which keep journey's own views current) do not.
func (s *State) MayEmit(k touchpoint.Kind) bool {
	for _, mk := range MarketingKinds() {
		if k == mk {
			return s.Consents(touchpoint.PurposeMarketing)
		}
	}
	return true
}
