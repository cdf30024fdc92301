package journey

import (
	"errors"
	"fmt"
	"time"
)

// RulesVersion names the rule set with its default thresholds. Every change
// of a rule or a default bumps it, so a transition's explanation says which
// rules produced it. Custom thresholds are appended by [Rules.Version].
const RulesVersion = "journey-rules/1"

// Day is 24 hours; the textbook's windows are counted in days of event time.
const Day = 24 * time.Hour

// Rules holds the configurable thresholds. The zero value is not valid; use
// [DefaultRules].
type Rules struct {
	// LoyalOrders counted orders within one LoyalWindow make a new_customer
	// loyal (default 3).
	LoyalOrders int
	// LoyalWindow is the span that must hold LoyalOrders counted orders,
	// inclusive at both ends: orders on day 0 and day 365 lie in one span
	// (default 365 days).
	LoyalWindow time.Duration
	// InactiveAfter is how long after the last counted order a customer
	// becomes ex_customer unless they order again strictly before (default
	// 365 days).
	InactiveAfter time.Duration
}

// DefaultRules are the textbook's thresholds: 3 orders in 365 days, ex after
// 365 days without an order.
func DefaultRules() Rules {
	return Rules{LoyalOrders: 3, LoyalWindow: 365 * Day, InactiveAfter: 365 * Day}
}

// ErrRules marks an invalid threshold.
var ErrRules = errors.New("journey: invalid rules")

// Validate reports a threshold that would make the rules meaningless.
func (r Rules) Validate() error {
	switch {
	case r.LoyalOrders < 1:
		return fmt.Errorf("%w: loyal orders must be at least 1, got %d", ErrRules, r.LoyalOrders)
	case r.LoyalWindow < 0:
		return fmt.Errorf("%w: loyal window must not be negative, got %s", ErrRules, r.LoyalWindow)
	case r.InactiveAfter <= 0:
		return fmt.Errorf("%w: inactive-after must be positive, got %s", ErrRules, r.InactiveAfter)
	}
	return nil
}

// Version is [RulesVersion] for the defaults, and RulesVersion with the
// thresholds appended otherwise, so histories made under custom thresholds
// are told apart.
func (r Rules) Version() string {
	if r == DefaultRules() {
		return RulesVersion
	}
	return fmt.Sprintf("%s+loyal=%d/%s,inactive=%s", RulesVersion, r.LoyalOrders, r.LoyalWindow, r.InactiveAfter)
}
