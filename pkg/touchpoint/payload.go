package touchpoint

import (
	"encoding/json"
	"strconv"
)

// Field names a payload property, for presence tracking and error paths.
type Field uint8

// Payload properties. The order is the JSON Schema's and the error order.
const (
	FAccountID Field = iota
	FContactID
	FDMURole
	FChannel
	FURL
	FCampaign
	FSessionID
	FQuoteID
	FOrderID
	FComplaintID
	FSurveyID
	FStatus
	FAmount
	FCurrency
	FItems
	FCategory
	FSeverity
	FText
	FScore
	FComment
	FReason
	numFields
)

var fieldNames = [numFields]string{
	"account_id", "contact_id", "dmu_role", "channel", "url", "campaign", "session_id",
	"quote_id", "order_id", "complaint_id", "survey_id", "status", "amount", "currency",
	"items", "category", "severity", "text", "score", "comment", "reason",
}

func (f Field) String() string { return fieldNames[f] }

var fieldByName = func() map[string]Field {
	m := make(map[string]Field, numFields)
	for i, n := range fieldNames {
		m[n] = Field(i)
	}
	return m
}()

// Payload is the decoded data of any fact event: one flat struct for all
// kinds, so that consumers (the writer's typed columns, the rules) read
// fields without a type switch. Has tells which properties were present.
type Payload struct {
	AccountID, ContactID, DMURole, Channel string
	URL, Campaign, SessionID               string
	QuoteID, OrderID, ComplaintID          string
	SurveyID                               string
	Status                                 string
	Amount                                 Amount
	Currency                               string
	Items                                  int64
	Category, Severity, Text               string
	Score                                  int64
	Comment                                string
	Reason                                 string

	set  uint32 // properties decoded
	seen uint32 // properties present, even with a bad value
}

// Has reports whether the property was present in the payload.
func (p *Payload) Has(f Field) bool { return p.set&(1<<f) != 0 }

func (p *Payload) mark(f Field) { p.set |= 1 << f }

// Amount is a non-negative decimal with at most 2 decimals, held exactly in
// hundredths (cents) so that sums never drift.
type Amount struct{ Cents int64 }

// String renders the amount with two decimals, e.g. "12.50".
func (a Amount) String() string {
	c := a.Cents
	neg := c < 0
	if neg {
		c = -c
	}
	s := strconv.FormatInt(c/100, 10) + "." + string(rune('0'+c%100/10)) + string(rune('0'+c%10))
	if neg {
		return "-" + s
	}
	return s
}

// MarshalJSON writes the amount as a JSON number with two decimals.
func (a Amount) MarshalJSON() ([]byte, error) { return []byte(a.String()), nil }

// ParseAmount parses "12", "12.5" or "12.50" (at most 2 decimals, no sign,
// no exponent) into an exact Amount.
func ParseAmount(s string) (Amount, bool) {
	if s == "" || len(s) > 18 {
		return Amount{}, false
	}
	var whole, frac int64
	i := 0
	for ; i < len(s) && s[i] != '.'; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return Amount{}, false
		}
		if i == 1 && s[0] == '0' || i >= 15 {
			return Amount{}, false // leading zero, or more than the schema's 15 digits
		}
		whole = whole*10 + int64(c-'0')
	}
	if i == 0 {
		return Amount{}, false
	}
	if i < len(s) {
		digits := s[i+1:]
		if len(digits) == 0 || len(digits) > 2 {
			return Amount{}, false
		}
		for j := 0; j < len(digits); j++ {
			c := digits[j]
			if c < '0' || c > '9' {
				return Amount{}, false
			}
			frac = frac*10 + int64(c-'0')
		}
		if len(digits) == 1 {
			frac *= 10
		}
	}
	return Amount{Cents: whole*100 + frac}, true
}

// Typed is a payload of one kind that can build an [Event] with [New].
type Typed interface {
	Kind() Kind
	json.Marshaler
}

// Common holds the properties every payload may carry (B2B context).
type Common struct {
	AccountID string `json:"account_id,omitempty"`
	ContactID string `json:"contact_id,omitempty"`
	// DMURole is the contact's role in the account's decision-making unit:
	// decision_maker, influencer, buyer, user or gatekeeper.
	DMURole string `json:"dmu_role,omitempty"`
	// Channel: web, store, phone, email, event or other. Required on a visit.
	Channel string `json:"channel,omitempty"`
}

// Visit is a visit in any channel (Market-to-Sales starts here).
type Visit struct {
	Common
	URL       string `json:"url,omitempty"`
	Campaign  string `json:"campaign,omitempty"`
	SessionID string `json:"session_id,omitempty"`
}

// Quote is a quote's state change (Sales-to-Order).
type Quote struct {
	Common
	QuoteID  string `json:"quote_id"`
	Status   string `json:"status"`
	Amount   Amount `json:"amount"`
	Currency string `json:"currency"`
}

// Order is an order placed or cancelled.
type Order struct {
	Common
	OrderID  string `json:"order_id"`
	Status   string `json:"status"`
	Amount   Amount `json:"amount"`
	Currency string `json:"currency"`
	Items    int64  `json:"items,omitempty"`
}

// Complaint is a complaint opened or resolved.
type Complaint struct {
	Common
	ComplaintID string `json:"complaint_id"`
	Status      string `json:"status"`
	Category    string `json:"category"`
	Severity    string `json:"severity,omitempty"`
	Text        string `json:"text,omitempty"`
}

// Survey is an answer to the NPS question, 0-10, with the optional
// "what should we improve?" comment.
type Survey struct {
	Common
	SurveyID string `json:"survey_id"`
	Score    int64  `json:"score"`
	Comment  string `json:"comment,omitempty"`
}

// Offboarded is the ops decision that a customer no longer fits.
type Offboarded struct {
	Common
	Reason string `json:"reason,omitempty"`
}

func (Visit) Kind() Kind      { return KindVisit }
func (Quote) Kind() Kind      { return KindQuote }
func (Order) Kind() Kind      { return KindOrder }
func (Complaint) Kind() Kind  { return KindComplaint }
func (Survey) Kind() Kind     { return KindSurvey }
func (Offboarded) Kind() Kind { return KindOffboarded }

// The aliases drop the methods so encoding/json does not recurse.
type (
	visitJSON      Visit
	quoteJSON      Quote
	orderJSON      Order
	complaintJSON  Complaint
	surveyJSON     Survey
	offboardedJSON Offboarded
)

func (v Visit) MarshalJSON() ([]byte, error)      { return json.Marshal(visitJSON(v)) }
func (v Quote) MarshalJSON() ([]byte, error)      { return json.Marshal(quoteJSON(v)) }
func (v Order) MarshalJSON() ([]byte, error)      { return json.Marshal(orderJSON(v)) }
func (v Complaint) MarshalJSON() ([]byte, error)  { return json.Marshal(complaintJSON(v)) }
func (v Survey) MarshalJSON() ([]byte, error)     { return json.Marshal(surveyJSON(v)) }
func (v Offboarded) MarshalJSON() ([]byte, error) { return json.Marshal(offboardedJSON(v)) }
