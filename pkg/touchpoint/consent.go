package touchpoint

import (
	"fmt"
	"strings"
)

// ExtConsent is the extension attribute that carries a customer's consent
// answers on any touchpoint (docs/privacy.md, Consent): a comma-separated
// list of purpose:answer, e.g. "marketing:granted,analytics:withdrawn". The
// touchpoint that carries it is the record of the answer: its time says
// when it was given, its (source, id) where; the events table keeps every
// one, which is the consent history.
const ExtConsent = "consent"

// Purpose is what personal data may be used for.
type Purpose string

// The purposes journey knows.
const (
	// PurposeAnalytics: stage, NPS and funnel figures about the customer.
	PurposeAnalytics Purpose = "analytics"
	// PurposeMarketing: marketing automation acting on the customer (the
	// at_risk derived event).
	PurposeMarketing Purpose = "marketing"
)

// Purposes lists the purposes in a fixed order.
func Purposes() []Purpose { return []Purpose{PurposeAnalytics, PurposeMarketing} }

// Consent answers.
const (
	ConsentGranted   = "granted"
	ConsentWithdrawn = "withdrawn"
)

// ConsentAnswer is one purpose's answer.
type ConsentAnswer struct {
	Purpose Purpose
	Granted bool
}

// ParseConsent reads an ExtConsent value. Each purpose may appear once;
// an unknown purpose or answer is an error that names it, so a typo is
// refused at the door instead of being taken for "no answer".
func ParseConsent(v string) ([]ConsentAnswer, error) {
	if v == "" {
		return nil, fmt.Errorf("is empty; want purpose:answer pairs such as marketing:granted")
	}
	parts := strings.Split(v, ",")
	out := make([]ConsentAnswer, 0, len(parts))
	seen := map[Purpose]bool{}
	for _, p := range parts {
		purpose, answer, ok := strings.Cut(p, ":")
		if !ok {
			return nil, fmt.Errorf("entry %q is not purpose:answer", p)
		}
		pu := Purpose(purpose)
		if pu != PurposeAnalytics && pu != PurposeMarketing {
			return nil, fmt.Errorf("purpose %q is unknown; want analytics or marketing", purpose)
		}
		if seen[pu] {
			return nil, fmt.Errorf("purpose %q is given twice", purpose)
		}
		seen[pu] = true
		switch answer {
		case ConsentGranted:
			out = append(out, ConsentAnswer{pu, true})
		case ConsentWithdrawn:
			out = append(out, ConsentAnswer{pu, false})
		default:
			return nil, fmt.Errorf("answer %q for %s is unknown; want granted or withdrawn", answer, purpose)
		}
	}
	return out, nil
}
