package account

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/touchpoint"
)

// Event is a fact event as the account rules read it: the customer rules'
// event plus the customer (the CloudEvents subject) it belongs to.
type Event struct {
	CustomerID string
	journey.Event
}

func (e *Event) mark() journey.Mark { return journey.Mark{At: e.Time, Seq: e.Seq, ID: e.ID} }

// ContactKey identifies a contact: customer id and contact id (empty for
// the customer's own events), joined by a unit separator that neither
// holds (the contract refuses control characters in identifiers).
func ContactKey(customerID, contactID string) string { return customerID + "\x1f" + contactID }

// SplitContactKey is the inverse of [ContactKey].
func SplitContactKey(k string) (customerID, contactID string) {
	c, ct, _ := strings.Cut(k, "\x1f")
	return c, ct
}

// Placement is where a contact was last seen: the account_id of its
// latest event (by mark) that named one.
type Placement struct {
	AccountID string       `json:"account_id"`
	Mark      journey.Mark `json:"mark"`
}

// Member is what an account knows of one contact.
type Member struct {
	CustomerID string `json:"customer_id"`
	ContactID  string `json:"contact_id,omitempty"`
	// Placed is the contact's latest placement as far as this account was
	// told; the contact is a current member when it names this account.
	Placed *Placement `json:"placed,omitempty"`
	// Role is the latest dmu_role on the contact's events for this account.
	Role     string        `json:"role,omitempty"`
	RoleMark *journey.Mark `json:"role_mark,omitempty"`
	// FirstTouch and LastTouch: the contact's earliest and latest events
	// for this account.
	FirstTouch *journey.Mark `json:"first_touch,omitempty"`
	LastTouch  *journey.Mark `json:"last_touch,omitempty"`
	// Survey is the latest answer given for this account.
	Survey     *journey.Answer                    `json:"survey,omitempty"`
	Complaints map[string]*journey.ComplaintFacts `json:"complaints,omitempty"`
}

// Current reports whether the contact belongs to accountID now.
func (m *Member) Current(accountID string) bool {
	return m.Placed != nil && m.Placed.AccountID == accountID
}

// OpenComplaints counts complaint ids opened and not resolved.
func (m *Member) OpenComplaints() int {
	n := 0
	for _, c := range m.Complaints {
		if c.Opened != nil && c.Resolved == nil {
			n++
		}
	}
	return n
}

// QuoteFacts is what is known of one quote: its earliest "sent" and its
// earliest closing (accepted, rejected, expired). It is open when sent and
// not closed, whatever the order the two arrived in.
type QuoteFacts struct {
	CustomerID string        `json:"customer_id"`
	QuoteID    string        `json:"quote_id"`
	Sent       *journey.Mark `json:"sent,omitempty"`
	Closed     *journey.Mark `json:"closed,omitempty"`
	// ClosedAs is the status of the earliest closing.
	ClosedAs string `json:"closed_as,omitempty"`
}

// Open reports a quote sent and not closed.
func (q *QuoteFacts) Open() bool { return q.Sent != nil && q.Closed == nil }

// Quote statuses the rules act on.
const (
	QuoteSent     = "sent"
	QuoteAccepted = "accepted"
	QuoteRejected = "rejected"
	QuoteExpired  = "expired"
)

// State is one account's facts. It is plain data that encodes to JSON, so
// a store can keep it. Use [NewState].
type State struct {
	AccountID string `json:"account_id"`
	// Stage holds the stage facts of every event that named this account
	// (its CustomerID is the account id) and the stage history.
	Stage   *journey.State         `json:"stage"`
	Members map[string]*Member     `json:"members,omitempty"`
	Quotes  map[string]*QuoteFacts `json:"quotes,omitempty"`
	// Flags are the view's flags as the last apply derived them at its now;
	// the next apply reports its change against them.
	Flags Flags `json:"flags"`
}

// NewState returns the empty state of an account.
func NewState(accountID string) *State {
	return &State{AccountID: accountID, Stage: journey.NewState(accountID), Flags: Flags{Stage: journey.StageNone}}
}

// Explain returns the stage history: every transition with its reason,
// cause events and rules version, oldest first.
func (s *State) Explain() []journey.Transition { return s.Stage.Explain() }

// Forget removes every contact of customerID with their answers,
// complaints and quotes, and reports whether anything went. It is the
// erasure hook. The stage facts stay, so that the stage history is
// unchanged: event ids and times carry no contact data, and the
// customer's orders, keyed by customer and order id, are keyed by
// [Pseudonym] of the customer instead (still apart from other customers'
// orders with the same id).
func (s *State) Forget(customerID string) bool {
	gone := false
	for k, m := range s.Members {
		if m.CustomerID == customerID {
			delete(s.Members, k)
			gone = true
		}
	}
	for k, q := range s.Quotes {
		if q.CustomerID == customerID {
			delete(s.Quotes, k)
			gone = true
		}
	}
	if s.Stage != nil {
		prefix := ContactKey(customerID, "")
		for k, o := range s.Stage.Orders {
			if id, ok := strings.CutPrefix(k, prefix); ok {
				delete(s.Stage.Orders, k)
				s.Stage.Orders[ContactKey(Pseudonym(customerID), id)] = o
				gone = true
			}
		}
	}
	return gone
}

// Pseudonym is what an erased customer's id becomes where a fact must stay
// apart from other customers': hex SHA-256 of the id, the hash the
// suppression list keeps (pkg/suppression.Hash).
func Pseudonym(customerID string) string {
	h := sha256.Sum256([]byte(customerID))
	return hex.EncodeToString(h[:])
}

func later(cur *journey.Mark, m journey.Mark) bool     { return cur == nil || cur.Before(m) }
func earlierOf(cur *journey.Mark, m journey.Mark) bool { return cur == nil || m.Before(*cur) }

// stageEvent is e as the stage fold sees it: orders keyed per customer (two
// customers of one account may reuse an order id), offboardings as they
// are, and every other kind as a bare touch (the stage needs only the first
// touch of those, and the account's answers live with its members).
func stageEvent(e *Event) journey.Event {
	se := journey.Event{Source: e.Source, ID: e.ID, Seq: e.Seq, Time: e.Time, AccountID: e.AccountID}
	switch e.Kind {
	case touchpoint.KindOrder:
		se.Kind, se.Status = e.Kind, e.Status
		if e.OrderID != "" {
			se.OrderID = ContactKey(e.CustomerID, e.OrderID)
		}
	case touchpoint.KindOffboarded:
		se.Kind = e.Kind
	}
	return se
}

// touchTime returns the time of a mark, zero for nil.
func touchTime(m *journey.Mark) time.Time {
	if m == nil {
		return time.Time{}
	}
	return m.At
}
