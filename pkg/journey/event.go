package journey

import (
	"strings"
	"time"

	"github.com/klantreis/journey/pkg/touchpoint"
)

// Event is the part of a fact event the rules read.
type Event struct {
	// Source and ID identify the event (CloudEvents); ID is what an
	// explanation cites as the cause.
	Source, ID string
	// Seq is the stream sequence: it orders events with the same Time and
	// lets a consumer drop redeliveries. 0 when unknown (then ID breaks ties).
	Seq  uint64
	Time time.Time
	Kind touchpoint.Kind
	// Status of an order (placed, cancelled) or complaint (opened, resolved).
	Status      string
	OrderID     string
	ComplaintID string
	// Score is the survey's 0..10 answer, Comment its free text.
	Score   int
	Comment string
	// AccountID and ContactID: the B2B context, when given.
	AccountID string
	ContactID string
	// Revision is the event's correction number (the revision extension;
	// 0 for an original). A higher one supersedes the event of the same
	// (Source, ID): see [Rulebook.Rebuild].
	Revision uint32
	// Consent are the consent answers the event carries (the consent
	// extension), nil for none.
	Consent []touchpoint.ConsentAnswer
	// DMURole and QuoteID are read by the account rules (pkg/account).
	DMURole string
	QuoteID string
}

// key is the event's identity as the state's maps hold it.
func (e *Event) key() string { return e.Source + " " + e.ID }

// FromTouchpoint takes the fields the rules need from a decoded event.
func FromTouchpoint(e *touchpoint.Event, p *touchpoint.Payload, seq uint64) Event {
	return Event{
		Source: e.Source,
		// A copy: the state keeps the id (marks, causes) for as long as it
		// keeps the customer, and a decoded id may share the memory of the
		// whole message's headers (nats.go decodes a header block into one
		// string), which it would then pin.
		ID:          strings.Clone(e.ID),
		Seq:         seq,
		Time:        e.Time,
		Kind:        e.Kind(),
		Status:      p.Status,
		OrderID:     p.OrderID,
		ComplaintID: p.ComplaintID,
		Score:       int(p.Score),
		Comment:     p.Comment,
		AccountID:   p.AccountID,
		ContactID:   p.ContactID,
		Revision:    revision(e),
		Consent:     consent(e),
		DMURole:     p.DMURole,
		QuoteID:     p.QuoteID,
	}
}

func revision(e *touchpoint.Event) uint32 {
	r, _ := touchpoint.Revision(e) // Validate refused a bad one
	return r
}

func consent(e *touchpoint.Event) []touchpoint.ConsentAnswer {
	v, ok := e.Extensions[touchpoint.ExtConsent]
	if !ok {
		return nil
	}
	a, _ := touchpoint.ParseConsent(v) // Validate refused a bad one
	return a
}

// Order and complaint statuses the rules act on.
const (
	StatusPlaced    = "placed"
	StatusCancelled = "cancelled"
	StatusOpened    = "opened"
	StatusResolved  = "resolved"
)

// Mark is the position of an event in a customer's history: its time, then
// stream sequence, then id, which totally orders the events of a customer.
type Mark struct {
	At  time.Time `json:"at"`
	Seq uint64    `json:"seq,omitempty"`
	ID  string    `json:"id"`
}

func (e *Event) mark() Mark { return Mark{At: e.Time, Seq: e.Seq, ID: e.ID} }

// Before reports whether m comes strictly before o.
func (m Mark) Before(o Mark) bool {
	if c := m.At.Compare(o.At); c != 0 {
		return c < 0
	}
	if m.Seq != o.Seq {
		return m.Seq < o.Seq
	}
	return m.ID < o.ID
}

// IsZero reports an unset mark.
func (m Mark) IsZero() bool { return m.At.IsZero() && m.Seq == 0 && m.ID == "" }

// earlier returns the earlier of a set mark and m (m when cur is unset).
func earlier(cur *Mark, m Mark) (Mark, bool) {
	if cur == nil || m.Before(*cur) {
		return m, true
	}
	return *cur, false
}
