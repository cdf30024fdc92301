package account

import (
	"errors"
	"fmt"
	"time"

	"github.com/klantreis/journey/pkg/journey"
)

// RulesVersion names the account rule set with its default thresholds.
// Every change of a rule or a default bumps it; custom thresholds are
// appended by [Rules.Version]. Every account transition carries it.
const RulesVersion = "account-rules/1"

// The DMU roles, in the order views list them.
const (
	RoleDecisionMaker = "decision_maker"
	RoleInfluencer    = "influencer"
	RoleBuyer         = "buyer"
	RoleUser          = "user"
	RoleGatekeeper    = "gatekeeper"
)

// Roles are the DMU roles in display order.
func Roles() []string {
	return []string{RoleDecisionMaker, RoleInfluencer, RoleBuyer, RoleUser, RoleGatekeeper}
}

func roleRank(r string) int {
	for i, x := range Roles() {
		if x == r {
			return i
		}
	}
	return len(Roles()) // no role or an unknown one: last
}

// Rules holds the configurable thresholds. The zero value is not valid; use
// [DefaultRules].
type Rules struct {
	// Stage are the stage thresholds, with the customer rules' meaning but
	// counted over all the account's orders (default journey.DefaultRules:
	// 3 counted orders in a 365-day span make loyal, 365 days without one
	// make ex_customer).
	Stage journey.Rules
	// CoverageWindow: a role is covered when a current contact with that
	// role had a touchpoint within it before now (default 90 days).
	CoverageWindow time.Duration
	// GapWindow: an open quote is a coverage gap when no current decision
	// maker had a touchpoint within it before now (default 30 days).
	GapWindow time.Duration
}

// DefaultRules are the defaults of issue 17.
func DefaultRules() Rules {
	return Rules{Stage: journey.DefaultRules(), CoverageWindow: 90 * journey.Day, GapWindow: 30 * journey.Day}
}

// ErrRules marks an invalid threshold.
var ErrRules = errors.New("account: invalid rules")

// Validate reports a threshold that would make the rules meaningless.
func (r Rules) Validate() error {
	if err := r.Stage.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrRules, err)
	}
	switch {
	case r.CoverageWindow <= 0:
		return fmt.Errorf("%w: coverage window must be positive, got %s", ErrRules, r.CoverageWindow)
	case r.GapWindow <= 0:
		return fmt.Errorf("%w: gap window must be positive, got %s", ErrRules, r.GapWindow)
	}
	return nil
}

// Version is [RulesVersion] for the defaults, and RulesVersion with the
// thresholds appended otherwise.
func (r Rules) Version() string {
	if r == DefaultRules() {
		return RulesVersion
	}
	return fmt.Sprintf("%s+loyal=%d/%s,inactive=%s,coverage=%s,gap=%s", RulesVersion,
		r.Stage.LoyalOrders, r.Stage.LoyalWindow, r.Stage.InactiveAfter, r.CoverageWindow, r.GapWindow)
}

// Rulebook applies one set of [Rules]. It is immutable and safe for
// concurrent use.
type Rulebook struct {
	rules Rules
	stage *journey.Rulebook
}

// New returns a rulebook for r, or an error wrapping [ErrRules].
func New(r Rules) (*Rulebook, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	st, err := journey.NewVersioned(r.Stage, r.Version())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRules, err)
	}
	return &Rulebook{rules: r, stage: st}, nil
}

// Rules returns the thresholds in use.
func (b *Rulebook) Rules() Rules { return b.rules }

// Version is the rules version written into every transition.
func (b *Rulebook) Version() string { return b.stage.Version() }
