package simulator

import (
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/klantreis/journey/pkg/touchpoint"
)

// Options shape a generated population. The zero value of every field but
// Seed and Start takes the default named on it.
type Options struct {
	// Seed makes the run reproducible: the same Seed, Start and options give
	// the same events, ids included. Different seeds give disjoint ids.
	Seed uint64
	// Start is the simulated clock at the beginning; event times follow it.
	Start time.Time
	// Customers is the size of the active population (default 1000). A
	// customer whose journey ends (lost prospect, churned) is replaced by a
	// new arrival, so the population stays steady in an endless run.
	Customers int
	// ArrivalWindow spreads the first arrivals over this span of simulated
	// time (default 30 days), so a backfill does not start with a stampede.
	ArrivalWindow time.Duration
	// B2BShare is the share of customers that are B2B accounts with a
	// decision-making unit of several contacts (default 0.3; negative
	// means none).
	B2BShare float64
	// Source prefixes the CloudEvents source of every event (default
	// "simulator"); the simulated systems append "/web", "/crm", "/erp",
	// "/support" and "/survey".
	Source string
}

const day = 24 * time.Hour

func (o Options) withDefaults() Options {
	if o.Customers <= 0 {
		o.Customers = 1000
	}
	if o.ArrivalWindow <= 0 {
		o.ArrivalWindow = 30 * day
	}
	if o.B2BShare == 0 {
		o.B2BShare = 0.3
	}
	if o.B2BShare < 0 {
		o.B2BShare = 0
	}
	if o.Source == "" {
		o.Source = "simulator"
	}
	if o.Start.IsZero() {
		o.Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return o
}

// action is one step of a customer's journey, due at a simulated time.
type action uint8

const (
	aArrive action = iota
	aVisit
	aQuoteRequest
	aQuoteSend
	aQuoteOutcome
	aQuoteExpire
	aOrder
	aCancel
	aComplaintOpen
	aComplaintResolve
	aSurvey
)

// slot is a heap entry: the sort keys inline, so that sifting through a
// heap of 100k customers does not chase a pointer per comparison.
type slot struct {
	at  int64
	seq uint64
	t   *task
}

type task struct {
	at   int64  // simulated Unix milliseconds: cheap to compare in the heap
	seq  uint64 // ties broken by scheduling order: deterministic
	c    *customer
	what action
	ref  string // quote, order or complaint id the step refers to
	amt  int64  // cents
}

// contact is a member of a B2B account's decision-making unit.
type contact struct {
	id, role string
}

type customer struct {
	id       string
	account  string
	contacts []contact
	currency string
	b2b      bool
	// Latent traits in [0,1]: how inclined to ask for quotes and buy, how
	// loyal (repeat rate and gap), how satisfied (shifts survey scores).
	buy, loyalty, mood float64
	visits, orders     int
	openComplaints     int
	quotes, complaints int
	surveys            int
	sessions           int
}

// Generator produces an endless, time-ordered stream of touchpoints for a
// simulated population. It is pure: no clock, no I/O; the same Options give
// the same events. It is not safe for concurrent use.
type Generator struct {
	o        Options
	rng      *rand.Rand
	queue    []slot // binary min-heap on (at, seq)
	seq      uint64
	events   uint64
	born     int
	idPrefix string
	sources  [5]string
	now      int64 // simulated Unix milliseconds
	free     []*task
	// ahead is the next event when Peek generated it already.
	ahead    touchpoint.Event
	hasAhead bool
}

// NewGenerator returns a generator for o.
func NewGenerator(o Options) *Generator {
	o = o.withDefaults()
	g := &Generator{
		o:        o,
		rng:      rand.New(rand.NewPCG(o.Seed, 0x6a6f75726e6579)), // "journey"
		idPrefix: strconv.FormatUint(o.Seed, 36) + "-",
		now:      o.Start.UnixMilli(),
	}
	g.sources = [5]string{o.Source + "/web", o.Source + "/crm", o.Source + "/erp", o.Source + "/support", o.Source + "/survey"}
	for range o.Customers {
		at := g.now + g.rng.Int64N(o.ArrivalWindow.Milliseconds())
		g.schedule(g.newCustomer(), aArrive, at, "", 0)
	}
	return g
}

// Peek returns the simulated time of the next event. It generates that
// event ahead (some steps emit nothing, so the earliest pending step is not
// always the next event's time); the sequence does not depend on Peek.
func (g *Generator) Peek() time.Time {
	if !g.hasAhead {
		g.ahead, g.hasAhead = g.next(), true
	}
	return g.ahead.Time
}

// Next returns the next event in time order. Its Time is the simulated time.
func (g *Generator) Next() touchpoint.Event {
	if g.hasAhead {
		e := g.ahead
		g.ahead, g.hasAhead = touchpoint.Event{}, false
		return e
	}
	return g.next()
}

func (g *Generator) next() touchpoint.Event {
	for {
		t := g.pop()
		g.now = t.at
		e, ok := g.step(t)
		g.release(t)
		if ok {
			return e
		}
	}
}

// Generate returns the next n events: pre-generation for benchmarks that
// must not measure the generator.
func (g *Generator) Generate(n int) []touchpoint.Event {
	out := make([]touchpoint.Event, n)
	for i := range out {
		out[i] = g.Next()
	}
	return out
}

func (g *Generator) newCustomer() *customer {
	n := g.born
	g.born++
	c := &customer{
		b2b:     g.rng.Float64() < g.o.B2BShare,
		buy:     g.rng.Float64(),
		loyalty: g.rng.Float64(),
		mood:    g.rng.Float64(),
	}
	c.currency = pick(g.rng, currencies, currencyWeights)
	num := strconv.Itoa(n)
	if c.b2b {
		c.id = "acct-" + g.idPrefix + num
		c.account = "A-" + g.idPrefix + num
		// A decision-making unit: the decision maker and buyer always, then
		// some of influencer, user, gatekeeper.
		k := 2 + g.rng.IntN(4)
		for i := range k {
			c.contacts = append(c.contacts, contact{id: c.account + "-c" + strconv.Itoa(i+1), role: dmuRoles[i]})
		}
	} else {
		c.id = "cust-" + g.idPrefix + num
	}
	return c
}

// dmuRoles in the order an account's contacts are created.
var dmuRoles = [5]string{"decision_maker", "buyer", "influencer", "user", "gatekeeper"}

var (
	currencies      = []string{"EUR", "USD", "GBP"}
	currencyWeights = []float64{0.8, 0.12, 0.08}
	channels        = []string{"web", "email", "store", "phone", "event", "other"}
	channelWeights  = []float64{0.6, 0.12, 0.1, 0.08, 0.05, 0.05}
	campaigns       = []string{"", "", "", "spring-sale", "newsletter", "retargeting", "webinar", "partner"}
	paths           = []string{"/", "/products", "/pricing", "/contact", "/blog/customer-journeys", "/cases", "/support"}
	categories      = []string{"delivery", "billing", "product_quality", "service", "other"}
	categoryWeights = []float64{0.35, 0.2, 0.25, 0.15, 0.05}
	severities      = []string{"low", "medium", "high"}
	severityWeights = []float64{0.5, 0.35, 0.15}
	complaintTexts  = []string{"", "Order arrived late.", "Invoice amount was wrong.", "Product broke after a week.", "Nobody answered my call.", "Wrong item delivered."}
	comments        = [3][]string{
		{"", "Faster delivery please.", "Better support on the phone.", "Clearer invoices.", "Fix the quality issues."},
		{"", "Fine, could be cheaper.", "Website could be simpler.", "OK overall."},
		{"", "", "Great service!", "Keep it up.", "Very happy with the product."},
	}
	// npsWeights: how likely a customer of average mood answers 0..10. It
	// gives about 46% promoters, 33% passives and 21% detractors (NPS about
	// +25), the shape of published B2C/B2B benchmarks.
	npsWeights = []float64{2, 1, 1, 2, 3, 5, 7, 13, 20, 22, 24}
)

func pick(r *rand.Rand, vals []string, weights []float64) string {
	return vals[pickIndex(r, weights)]
}

func pickIndex(r *rand.Rand, weights []float64) int {
	total := 0.0
	for _, w := range weights {
		total += w
	}
	x := r.Float64() * total
	for i, w := range weights {
		x -= w
		if x < 0 {
			return i
		}
	}
	return len(weights) - 1
}

// after returns now + a uniform draw in [lo, hi).
func (g *Generator) after(lo, hi time.Duration) int64 {
	d := lo.Milliseconds()
	if hi > lo {
		d += g.rng.Int64N((hi - lo).Milliseconds())
	}
	return g.now + d
}

// afterExp returns now + an exponential draw with the given mean, at least
// an hour: gaps between a customer's steps.
func (g *Generator) afterExp(mean time.Duration) int64 {
	d := int64(g.rng.ExpFloat64() * float64(mean.Milliseconds()))
	return g.now + max(d, time.Hour.Milliseconds())
}

func (g *Generator) chance(p float64) bool { return g.rng.Float64() < p }

// amount draws a log-normal order value: median about 80 for consumers,
// 4000 for accounts.
func (g *Generator) amount(c *customer) int64 {
	median := 80.0
	if c.b2b {
		median = 4000
	}
	v := median * math.Exp(g.rng.NormFloat64()*0.6)
	return int64(v*100) + 1
}

// step runs one task: it returns the event to emit (if any) and schedules
// what follows.
func (g *Generator) step(t *task) (touchpoint.Event, bool) {
	c := t.c
	switch t.what {
	case aArrive, aVisit:
		c.visits++
		e := g.visit(c)
		g.afterVisit(c)
		return e, true
	case aQuoteRequest:
		c.quotes++
		id := "Q-" + c.id + "-" + strconv.Itoa(c.quotes)
		amt := g.amount(c)
		g.schedule(c, aQuoteSend, g.after(2*time.Hour, 3*day), id, amt)
		return g.quote(c, id, "requested", amt, roleFor(c, g.rng, "influencer", "buyer")), true
	case aQuoteSend:
		g.schedule(c, aQuoteOutcome, g.after(day, 14*day), t.ref, t.amt)
		return g.quote(c, t.ref, "sent", t.amt, ""), true
	case aQuoteOutcome:
		// Accepted quotes become orders; the others may start over.
		r := g.rng.Float64()
		accept := 0.25 + 0.45*c.buy
		switch {
		case r < accept:
			g.schedule(c, aOrder, g.after(time.Hour, 3*day), "", t.amt)
			return g.quote(c, t.ref, "accepted", t.amt, roleFor(c, g.rng, "decision_maker")), true
		case r < accept+(1-accept)*0.55:
			g.nextAfterLoss(c)
			return g.quote(c, t.ref, "rejected", t.amt, roleFor(c, g.rng, "decision_maker")), true
		default:
			// Silence: the CRM marks the quote expired 30 days after sending.
			g.schedule(c, aQuoteExpire, g.after(16*day, 29*day), t.ref, t.amt)
			return touchpoint.Event{}, false
		}
	case aQuoteExpire:
		g.nextAfterLoss(c)
		return g.quote(c, t.ref, "expired", t.amt, ""), true
	case aOrder:
		c.orders++
		id := "O-" + c.id + "-" + strconv.Itoa(c.orders)
		amt := t.amt
		if amt == 0 {
			amt = g.amount(c)
		}
		g.afterOrder(c, id, amt)
		return g.order(c, id, "placed", amt), true
	case aCancel:
		return g.order(c, t.ref, "cancelled", t.amt), true
	case aComplaintOpen:
		c.complaints++
		c.openComplaints++
		c.mood *= 0.7
		id := "C-" + c.id + "-" + strconv.Itoa(c.complaints)
		if g.chance(0.85) {
			g.schedule(c, aComplaintResolve, g.after(4*time.Hour, 14*day), id, 0)
		}
		return g.complaint(c, id, "opened"), true
	case aComplaintResolve:
		c.openComplaints--
		if g.chance(0.3) {
			g.schedule(c, aSurvey, g.after(day, 5*day), "", 0)
		}
		return g.complaint(c, t.ref, "resolved"), true
	case aSurvey:
		c.surveys++
		return g.survey(c), true
	}
	return touchpoint.Event{}, false
}

// afterVisit decides what a prospect or customer does after a visit.
func (g *Generator) afterVisit(c *customer) {
	if c.orders > 0 {
		return // a customer's visits ride along; orders drive the line
	}
	pQuote, pDirect := 0.05+0.25*c.buy, 0.02+0.15*c.buy
	if c.b2b {
		pQuote, pDirect = 0.1+0.4*c.buy, 0.01
	}
	r := g.rng.Float64()
	switch {
	case r < pQuote:
		g.schedule(c, aQuoteRequest, g.after(time.Hour, 2*day), "", 0)
	case r < pQuote+pDirect:
		g.schedule(c, aOrder, g.after(10*time.Minute, day), "", 0)
	case g.chance(0.75 - 0.08*float64(c.visits)):
		g.schedule(c, aVisit, g.afterExp(5*day), "", 0)
	default:
		g.retire(c) // a prospect that never comes back
	}
}

// nextAfterLoss: after a rejected or expired quote a prospect may look
// around again and a customer may try again later; the others leave.
func (g *Generator) nextAfterLoss(c *customer) {
	switch {
	case c.orders == 0 && g.chance(0.4):
		g.schedule(c, aVisit, g.afterExp(20*day), "", 0)
	case c.orders > 0 && g.chance(0.6):
		g.schedule(c, aOrder, g.afterExp(45*day), "", 0)
	default:
		g.retire(c)
	}
}

// afterOrder schedules an order's aftermath and the customer's next
// purchase, or lets the customer go quiet (the projector turns a year of
// silence into an ex-customer).
func (g *Generator) afterOrder(c *customer, id string, amt int64) {
	if g.chance(0.04) {
		g.schedule(c, aCancel, g.after(10*time.Minute, 2*day), id, amt)
	}
	if g.chance(0.06 + 0.12*(1-c.mood)) {
		g.schedule(c, aComplaintOpen, g.after(day, 20*day), "", 0)
	}
	if g.chance(0.35) {
		g.schedule(c, aSurvey, g.after(3*day, 14*day), "", 0)
	}
	if g.chance(0.5) {
		g.schedule(c, aVisit, g.after(day, 30*day), "", 0)
	}
	pRepeat := 0.3 + 0.6*c.loyalty - 0.2*float64(c.openComplaints)
	if !g.chance(pRepeat) {
		g.retire(c)
		return
	}
	var next int64
	if g.chance(0.08) {
		// Dormant, then won back after more than a year.
		next = g.after(380*day, 500*day)
	} else {
		next = g.afterExp(time.Duration(20+160*(1-c.loyalty)) * day)
	}
	if c.b2b && g.chance(0.5) {
		g.schedule(c, aQuoteRequest, next, "", 0)
	} else {
		g.schedule(c, aOrder, next, "", 0)
	}
}

// retire ends a customer's journey and brings in a new arrival, keeping the
// population steady. Steps already scheduled (a survey, a resolution) still
// happen.
func (g *Generator) retire(*customer) {
	g.schedule(g.newCustomer(), aArrive, g.afterExp(3*day), "", 0)
}

// roleFor picks the contact that typically takes this step: the first
// contact with one of the roles, else any contact. "" for consumers.
func roleFor(c *customer, r *rand.Rand, roles ...string) string {
	if !c.b2b {
		return ""
	}
	for _, role := range roles {
		for _, k := range c.contacts {
			if k.role == role {
				return role
			}
		}
	}
	return c.contacts[r.IntN(len(c.contacts))].role
}

func (g *Generator) schedule(c *customer, what action, at int64, ref string, amt int64) {
	var t *task
	if n := len(g.free); n > 0 {
		t, g.free = g.free[n-1], g.free[:n-1]
	} else {
		t = new(task)
	}
	g.seq++
	*t = task{at: at, seq: g.seq, c: c, what: what, ref: ref, amt: amt}
	g.push(t)
}

func (g *Generator) release(t *task) {
	*t = task{}
	g.free = append(g.free, t)
}

func less(a, b *slot) bool {
	if a.at == b.at {
		return a.seq < b.seq
	}
	return a.at < b.at
}

func (g *Generator) push(t *task) {
	g.queue = append(g.queue, slot{at: t.at, seq: t.seq, t: t})
	i := len(g.queue) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !less(&g.queue[i], &g.queue[p]) {
			break
		}
		g.queue[i], g.queue[p] = g.queue[p], g.queue[i]
		i = p
	}
}

func (g *Generator) pop() *task {
	q := g.queue
	top := q[0].t
	last := len(q) - 1
	q[0] = q[last]
	q[last] = slot{}
	q = q[:last]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(q) && less(&q[l], &q[m]) {
			m = l
		}
		if r < len(q) && less(&q[r], &q[m]) {
			m = r
		}
		if m == i {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	g.queue = q
	return top
}
