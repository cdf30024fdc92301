package account

import (
	"slices"

	"github.com/klantreis/journey/pkg/journey"
)

// Contact is the directory entry of one contact: every account its events
// named, with the latest mark for each. The projector keeps one per
// contact, so that an event of the contact reaches every account that
// lists it (to move it out) and each learns the contact's latest
// placement. The zero value with the ids set is a contact with no events.
type Contact struct {
	CustomerID string                  `json:"customer_id"`
	ContactID  string                  `json:"contact_id,omitempty"`
	Accounts   map[string]journey.Mark `json:"accounts,omitempty"`
}

// Observe merges an event of the contact and reports whether the entry
// changed. Events without an account_id change nothing.
func (c *Contact) Observe(e *Event) bool {
	if e.AccountID == "" {
		return false
	}
	m := e.mark()
	cur, ok := c.Accounts[e.AccountID]
	if ok && !cur.Before(m) {
		return false
	}
	if c.Accounts == nil {
		c.Accounts = make(map[string]journey.Mark, 1)
	}
	c.Accounts[e.AccountID] = m
	return true
}

// Latest is the contact's current placement; false before any account.
func (c *Contact) Latest() (Placement, bool) {
	var p Placement
	ok := false
	for a, m := range c.Accounts {
		if !ok || p.Mark.Before(m) || !m.Before(p.Mark) && a < p.AccountID {
			p, ok = Placement{AccountID: a, Mark: m}, true
		}
	}
	return p, ok
}

// AccountIDs lists every account the contact's events named, sorted.
func (c *Contact) AccountIDs() []string {
	out := make([]string, 0, len(c.Accounts))
	for a := range c.Accounts {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}
