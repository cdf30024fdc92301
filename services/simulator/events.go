package simulator

import (
	"strconv"
	"time"

	"github.com/klantreis/journey/pkg/touchpoint"
)

// Payloads are written with append rather than encoding/json: the generator
// is the load of every benchmark and must cost far less than what it loads.
// Every string it writes is plain ASCII without quotes or backslashes, so no
// escaping is needed (the tests validate every event it makes).

type obj struct{ b []byte }

func newObj(capacity int) obj { return obj{b: append(make([]byte, 0, capacity), '{')} }

func (o *obj) key(k string) {
	if len(o.b) > 1 {
		o.b = append(o.b, ',')
	}
	o.b = append(o.b, '"')
	o.b = append(o.b, k...)
	o.b = append(o.b, '"', ':')
}

func (o *obj) str(k, v string) {
	if v == "" {
		return
	}
	o.key(k)
	o.b = append(o.b, '"')
	o.b = append(o.b, v...)
	o.b = append(o.b, '"')
}

func (o *obj) int(k string, v int64) {
	o.key(k)
	o.b = strconv.AppendInt(o.b, v, 10)
}

func (o *obj) amount(k string, cents int64) {
	o.key(k)
	o.b = append(o.b, touchpoint.Amount{Cents: cents}.String()...)
}

func (o *obj) done() []byte { return append(o.b, '}') }

// common writes the B2B context: the account and the contact acting in the
// given role (any contact when role is "").
func (g *Generator) common(o *obj, c *customer, role string) {
	if !c.b2b {
		return
	}
	k := c.contacts[0]
	if role == "" {
		k = c.contacts[g.rng.IntN(len(c.contacts))]
	} else {
		for _, x := range c.contacts {
			if x.role == role {
				k = x
				break
			}
		}
	}
	o.str("account_id", c.account)
	o.str("contact_id", k.id)
	o.str("dmu_role", k.role)
}

func (g *Generator) event(c *customer, src int, typ string, data []byte) touchpoint.Event {
	g.events++
	return touchpoint.Event{
		ID:              g.idPrefix + strconv.FormatUint(g.events, 36),
		Source:          g.sources[src],
		Type:            typ,
		Subject:         c.id,
		Time:            time.UnixMilli(g.now).UTC(),
		DataContentType: touchpoint.ContentTypeJSON,
		DataSchema:      schemaURIs[typ],
		Data:            data,
	}
}

var schemaURIs = map[string]string{
	touchpoint.TypeVisit:     touchpoint.SchemaURI(touchpoint.TypeVisit),
	touchpoint.TypeQuote:     touchpoint.SchemaURI(touchpoint.TypeQuote),
	touchpoint.TypeOrder:     touchpoint.SchemaURI(touchpoint.TypeOrder),
	touchpoint.TypeComplaint: touchpoint.SchemaURI(touchpoint.TypeComplaint),
	touchpoint.TypeSurvey:    touchpoint.SchemaURI(touchpoint.TypeSurvey),
}

const (
	srcWeb = iota
	srcCRM
	srcERP
	srcSupport
	srcSurvey
)

func (g *Generator) visit(c *customer) touchpoint.Event {
	o := newObj(160)
	g.common(&o, c, "")
	ch := pick(g.rng, channels, channelWeights)
	o.str("channel", ch)
	if ch == "web" {
		o.str("url", "https://www.example.com"+paths[g.rng.IntN(len(paths))])
		c.sessions++
		o.str("session_id", "s-"+c.id+"-"+strconv.Itoa(c.sessions))
	}
	if ch == "web" || ch == "email" {
		o.str("campaign", campaigns[g.rng.IntN(len(campaigns))])
	}
	e := g.event(c, srcWeb, touchpoint.TypeVisit, o.done())
	if ch == "web" && c.sessions == 1 {
		// The cookie banner on the first web session: the more loyal
		// customers let marketing act on them (docs/privacy.md, Consent).
		// Decided from a trait already drawn, so the rest of the
		// simulation does not change.
		answer := touchpoint.ConsentWithdrawn
		if c.loyalty >= 0.4 {
			answer = touchpoint.ConsentGranted
		}
		e.Extensions = map[string]string{touchpoint.ExtConsent: "analytics:granted,marketing:" + answer}
	}
	return e
}

func (g *Generator) quote(c *customer, id, status string, cents int64, role string) touchpoint.Event {
	o := newObj(200)
	g.common(&o, c, role)
	if c.b2b {
		o.str("channel", "email")
	}
	o.str("quote_id", id)
	o.str("status", status)
	o.amount("amount", cents)
	o.str("currency", c.currency)
	return g.event(c, srcCRM, touchpoint.TypeQuote, o.done())
}

func (g *Generator) order(c *customer, id, status string, cents int64) touchpoint.Event {
	o := newObj(200)
	g.common(&o, c, "buyer")
	if !c.b2b {
		o.str("channel", pick(g.rng, channels[:3], channelWeights[:3]))
	}
	o.str("order_id", id)
	o.str("status", status)
	o.amount("amount", cents)
	o.str("currency", c.currency)
	items := int64(1 + g.rng.IntN(3))
	if c.b2b {
		items = int64(1 + g.rng.IntN(40))
	}
	o.int("items", items)
	return g.event(c, srcERP, touchpoint.TypeOrder, o.done())
}

func (g *Generator) complaint(c *customer, id, status string) touchpoint.Event {
	o := newObj(200)
	g.common(&o, c, "user")
	o.str("channel", pick(g.rng, []string{"phone", "email", "web"}, []float64{0.4, 0.4, 0.2}))
	o.str("complaint_id", id)
	o.str("status", status)
	o.str("category", pick(g.rng, categories, categoryWeights))
	if status == "opened" {
		o.str("severity", pick(g.rng, severities, severityWeights))
		o.str("text", complaintTexts[g.rng.IntN(len(complaintTexts))])
	}
	return g.event(c, srcSupport, touchpoint.TypeComplaint, o.done())
}

// Score draws an NPS answer: the benchmark distribution, moved up for a
// happy customer and down for an unhappy one or one with an open complaint.
func (g *Generator) score(c *customer) int64 {
	s := pickIndex(g.rng, npsWeights)
	shift := int(mathRound((c.mood - 0.5) * 3))
	if c.openComplaints > 0 {
		shift -= 3
	}
	s += shift
	return int64(min(10, max(0, s)))
}

func mathRound(x float64) float64 {
	if x < 0 {
		return -float64(int(-x + 0.5))
	}
	return float64(int(x + 0.5))
}

func (g *Generator) survey(c *customer) touchpoint.Event {
	o := newObj(200)
	g.common(&o, c, "")
	o.str("channel", "email")
	o.str("survey_id", "S-"+c.id+"-"+strconv.Itoa(c.surveys))
	s := g.score(c)
	o.int("score", s)
	cat := 2
	switch {
	case s <= 6:
		cat = 0
	case s <= 8:
		cat = 1
	}
	o.str("comment", comments[cat][g.rng.IntN(len(comments[cat]))])
	return g.event(c, srcSurvey, touchpoint.TypeSurvey, o.done())
}
