package journey

import (
	"time"

	"github.com/klantreis/journey/pkg/touchpoint"
)

// Stage is a lifecycle stage.
type Stage string

// The lifecycle stages; StageNone is "before the first touchpoint".
const (
	StageNone          Stage = "none"
	StageProspect      Stage = "prospect"
	StageNewCustomer   Stage = "new_customer"
	StageLoyalCustomer Stage = "loyal_customer"
	StageExCustomer    Stage = "ex_customer"
)

// Stages lists the stages a customer can be in, in lifecycle order
// (StageNone, before the first touchpoint, is none of them).
func Stages() []Stage {
	return []Stage{StageProspect, StageNewCustomer, StageLoyalCustomer, StageExCustomer}
}

// Reason names the rule that fired a transition.
type Reason string

// The reasons a transition can have.
const (
	ReasonFirstTouchpoint Reason = "first_touchpoint" // none -> prospect
	ReasonFirstOrder      Reason = "first_order"      // prospect -> new_customer
	ReasonRepeatOrders    Reason = "repeat_orders"    // new_customer -> loyal_customer
	ReasonInactive        Reason = "inactive"         // -> ex_customer at last counted order + InactiveAfter
	ReasonOffboarded      Reason = "offboarded"       // -> ex_customer at once
	ReasonReactivated     Reason = "reactivated"      // ex_customer -> new_customer
	ReasonOrderCancelled  Reason = "order_cancelled"  // a cancellation changed what the facts support
)

// Transition is one step of the explanation history.
type Transition struct {
	From   Stage     `json:"from"`
	To     Stage     `json:"to"`
	At     time.Time `json:"at"`
	Reason Reason    `json:"reason"`
	// Causes are the ids of the events that made the rule fire: the first
	// touchpoint, the order(s), the cancellation, the offboarding, or for
	// inactivity the last counted order.
	Causes       []string `json:"causes"`
	RulesVersion string   `json:"rules_version"`
}

func (t *Transition) equal(o *Transition) bool {
	if t.From != o.From || t.To != o.To || !t.At.Equal(o.At) || t.Reason != o.Reason ||
		t.RulesVersion != o.RulesVersion || len(t.Causes) != len(o.Causes) {
		return false
	}
	for i := range t.Causes {
		if t.Causes[i] != o.Causes[i] {
			return false
		}
	}
	return true
}

// OrderFacts is what is known of one order_id: its earliest placement and
// earliest cancellation. It counts from its placement until a cancellation
// later than that; a cancellation before the placement means it never counts.
type OrderFacts struct {
	Placed    *Mark `json:"placed,omitempty"`
	Cancelled *Mark `json:"cancelled,omitempty"`
}

// counted reports whether the order counts once the fold has reached m.
func (o *OrderFacts) counted(m Mark) bool {
	return o.Placed != nil && !m.Before(*o.Placed) && (o.Cancelled == nil || m.Before(*o.Cancelled))
}

// ComplaintFacts is what is known of one complaint_id. It is open when
// opened and not resolved, whatever the order the two arrived in.
type ComplaintFacts struct {
	Opened   *Mark `json:"opened,omitempty"`
	Resolved *Mark `json:"resolved,omitempty"`
}

// Answer is a survey answer.
type Answer struct {
	Mark
	Score     int    `json:"score"`
	Comment   string `json:"comment,omitempty"`
	ContactID string `json:"contact_id,omitempty"`
}

// Fold is where the stage fold over the facts stands: after the fact point
// Last, with the stage and what the rules need to continue from there.
type Fold struct {
	Last  Mark  `json:"last"`
	Stage Stage `json:"stage"`
	// PeriodStart is the placement that made the customer new_customer most
	// recently (first order or reactivation); loyalty counts orders from it.
	PeriodStart *Mark `json:"period_start,omitempty"`
	// LastCounted is the latest placement still counted at Last.
	LastCounted *Mark `json:"last_counted,omitempty"`
	// Offboarded is the latest offboarding not followed by a counted order.
	Offboarded *Mark `json:"offboarded,omitempty"`
	// Len is how many transitions of the history the fold produced; the rest
	// (at most one) is the inactivity tail that depends on now.
	Len int `json:"len"`
}

// State is one customer's facts and derived stage history. The zero value
// (with CustomerID set) is a customer with no events. It is plain data that
// encodes to JSON, so a store can keep it.
type State struct {
	CustomerID  string `json:"customer_id"`
	AccountID   string `json:"account_id,omitempty"`
	AccountMark *Mark  `json:"account_mark,omitempty"`

	FirstTouch *Mark     `json:"first_touch,omitempty"`
	LastTouch  time.Time `json:"last_touch"`
	FirstVisit *Mark     `json:"first_visit,omitempty"`
	FirstQuote *Mark     `json:"first_quote,omitempty"`

	Orders     map[string]*OrderFacts     `json:"orders,omitempty"`
	Complaints map[string]*ComplaintFacts `json:"complaints,omitempty"`
	Offboards  map[string]Mark            `json:"offboards,omitempty"`
	// Survey is the latest answer; Responses the keys of every answer.
	Survey    *Answer             `json:"survey,omitempty"`
	Responses map[string]struct{} `json:"responses,omitempty"`

	// Revisions holds the revision of every event of the customer that
	// was corrected (revision > 0), by "source id": an older version that
	// arrives later is stale and ignored.
	Revisions map[string]uint32 `json:"revisions,omitempty"`
	// Consent is the latest answer per purpose (see [State.Consents]).
	Consent map[touchpoint.Purpose]ConsentFact `json:"consent,omitempty"`

	History []Transition `json:"history,omitempty"`
	Fold    Fold         `json:"fold"`
	// Expires is when the inactivity rule makes the customer ex_customer,
	// zero when it cannot (prospect, ex_customer). The sweep indexes it.
	Expires time.Time `json:"expires,omitzero"`
}

// NewState returns the empty state of a customer.
func NewState(customerID string) *State {
	return &State{CustomerID: customerID, Fold: Fold{Stage: StageNone}}
}

// Stage is the current stage, StageNone before any event.
func (s *State) Stage() Stage {
	if len(s.History) == 0 {
		return StageNone
	}
	return s.History[len(s.History)-1].To
}

// StageSince is the time of the current stage's transition.
func (s *State) StageSince() time.Time {
	if len(s.History) == 0 {
		return time.Time{}
	}
	return s.History[len(s.History)-1].At
}

// Explain returns the stage history: every transition with its reason,
// causes and rules version, oldest first. The slice is the state's own.
func (s *State) Explain() []Transition { return s.History }

// CountedOrders is the number of order_ids placed and not cancelled.
func (s *State) CountedOrders() int {
	n := 0
	for _, o := range s.Orders {
		if o.Placed != nil && o.Cancelled == nil {
			n++
		}
	}
	return n
}

// Offboarded reports the latest offboarding that no counted order
// followed, and its time.
func (s *State) Offboarded() (bool, time.Time) {
	if s.Fold.Offboarded == nil {
		return false, time.Time{}
	}
	return true, s.Fold.Offboarded.At
}

// Milestones are the times of the textbook's three funnel processes:
// Market->Sales (first visit -> first quote), Sales->Order (first quote ->
// first counted order), Order->loyal customer (first counted order -> first
// time loyal). A zero time means not reached.
type Milestones struct {
	FirstVisit time.Time
	FirstQuote time.Time
	// FirstOrder is the earliest placement of an order that still counts.
	FirstOrder time.Time
	// FirstLoyal is the first transition to loyal_customer in the history.
	FirstLoyal time.Time
}

// Milestones returns the funnel milestone times.
func (s *State) Milestones() Milestones {
	var m Milestones
	if s.FirstVisit != nil {
		m.FirstVisit = s.FirstVisit.At
	}
	if s.FirstQuote != nil {
		m.FirstQuote = s.FirstQuote.At
	}
	var first *Mark
	for _, o := range s.Orders {
		if o.Placed != nil && o.Cancelled == nil && (first == nil || o.Placed.Before(*first)) {
			first = o.Placed
		}
	}
	if first != nil {
		m.FirstOrder = first.At
	}
	for i := range s.History {
		if s.History[i].To == StageLoyalCustomer {
			m.FirstLoyal = s.History[i].At
			break
		}
	}
	return m
}
