package account

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/touchpoint"
)

var t0 = time.Date(2025, 1, 1, 10, 0, 0, 0, time.UTC)

func day(d float64) time.Time { return t0.Add(time.Duration(d * float64(journey.Day))) }

// who is a contact of a customer in an account with a DMU role.
type who struct{ customer, contact, account, role string }

var (
	dm     = who{"cust-1", "dora", "acme", RoleDecisionMaker}
	buyer  = who{"cust-1", "bob", "acme", RoleBuyer}
	infl   = who{"cust-1", "ivo", "acme", RoleInfluencer}
	user   = who{"cust-2", "uma", "acme", RoleUser}
	global = who{"cust-9", "gus", "globex", RoleBuyer}
)

func (w who) in(account string) who { w.account = account; return w }
func (w who) as(role string) who    { w.role = role; return w }

func ev(w who, id string, k touchpoint.Kind, at time.Time) Event {
	return Event{CustomerID: w.customer, Event: journey.Event{Source: "test", ID: id, Time: at, Kind: k,
		AccountID: w.account, ContactID: w.contact, DMURole: w.role}}
}
func visit(w who, id string, at time.Time) Event { return ev(w, id, touchpoint.KindVisit, at) }
func placed(w who, id, order string, at time.Time) Event {
	e := ev(w, id, touchpoint.KindOrder, at)
	e.OrderID, e.Status = order, journey.StatusPlaced
	return e
}
func cancelled(w who, id, order string, at time.Time) Event {
	e := ev(w, id, touchpoint.KindOrder, at)
	e.OrderID, e.Status = order, journey.StatusCancelled
	return e
}
func quote(w who, id, q, status string, at time.Time) Event {
	e := ev(w, id, touchpoint.KindQuote, at)
	e.QuoteID, e.Status = q, status
	return e
}
func survey(w who, id string, score int, at time.Time) Event {
	e := ev(w, id, touchpoint.KindSurvey, at)
	e.Score = score
	return e
}
func complaint(w who, id, c, status string, at time.Time) Event {
	e := ev(w, id, touchpoint.KindComplaint, at)
	e.ComplaintID, e.Status = c, status
	return e
}
func offboard(w who, id string, at time.Time) Event { return ev(w, id, touchpoint.KindOffboarded, at) }

func rulebook(t testing.TB) *Rulebook {
	t.Helper()
	b, err := New(DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// applyEach applies the events one call each, as a stream delivers them.
func applyEach(b *Rulebook, s *State, now time.Time, evs []Event) {
	for i := range evs {
		b.Apply(s, now, evs[i:i+1], nil)
	}
}

type step struct {
	stage  journey.Stage
	reason journey.Reason
	causes []string
}

func TestAccountStage(t *testing.T) {
	t.Parallel()
	b := rulebook(t)
	cases := []struct {
		name string
		now  time.Time
		evs  []Event
		want []step
	}{
		{"any contact's touch makes a prospect", day(10), []Event{visit(infl, "v1", day(1)), visit(dm, "v2", day(2))},
			[]step{{journey.StageProspect, journey.ReasonFirstTouchpoint, []string{"v1"}}}},
		{"the first counted order of any contact", day(10), []Event{visit(infl, "v1", day(1)), placed(buyer, "o1", "A", day(3))},
			[]step{{journey.StageProspect, journey.ReasonFirstTouchpoint, []string{"v1"}},
				{journey.StageNewCustomer, journey.ReasonFirstOrder, []string{"o1"}}}},
		{"3 orders of different contacts and customers in 365 days make loyal", day(400), []Event{
			placed(buyer, "o1", "A", day(0)), placed(dm, "o2", "B", day(100)), placed(user, "o3", "A", day(365))},
			[]step{{journey.StageProspect, journey.ReasonFirstTouchpoint, []string{"o1"}},
				{journey.StageNewCustomer, journey.ReasonFirstOrder, []string{"o1"}},
				{journey.StageLoyalCustomer, journey.ReasonRepeatOrders, []string{"o1", "o2", "o3"}}}},
		{"3 orders spread over more than 365 days stay new", day(500), []Event{
			placed(buyer, "o1", "A", day(0)), placed(buyer, "o2", "B", day(200)), placed(buyer, "o3", "C", day(366))},
			[]step{{journey.StageProspect, journey.ReasonFirstTouchpoint, []string{"o1"}},
				{journey.StageNewCustomer, journey.ReasonFirstOrder, []string{"o1"}}}},
		{"a cancelled order does not count", day(10), []Event{placed(buyer, "o1", "A", day(1)), cancelled(buyer, "c1", "A", day(2))},
			[]step{{journey.StageProspect, journey.ReasonFirstTouchpoint, []string{"o1"}},
				{journey.StageNewCustomer, journey.ReasonFirstOrder, []string{"o1"}},
				{journey.StageProspect, journey.ReasonOrderCancelled, []string{"c1"}}}},
		{"the same order id of two customers is two orders", day(10), []Event{
			placed(buyer, "o1", "A", day(1)), cancelled(user, "c1", "A", day(2))},
			[]step{{journey.StageProspect, journey.ReasonFirstTouchpoint, []string{"o1"}},
				{journey.StageNewCustomer, journey.ReasonFirstOrder, []string{"o1"}}}},
		{"365 days without an order make ex_customer", day(400), []Event{placed(buyer, "o1", "A", day(1)), visit(dm, "v1", day(200))},
			[]step{{journey.StageProspect, journey.ReasonFirstTouchpoint, []string{"o1"}},
				{journey.StageNewCustomer, journey.ReasonFirstOrder, []string{"o1"}},
				{journey.StageExCustomer, journey.ReasonInactive, []string{"o1"}}}},
		{"offboarded", day(10), []Event{placed(buyer, "o1", "A", day(1)), offboard(dm, "off", day(5))},
			[]step{{journey.StageProspect, journey.ReasonFirstTouchpoint, []string{"o1"}},
				{journey.StageNewCustomer, journey.ReasonFirstOrder, []string{"o1"}},
				{journey.StageExCustomer, journey.ReasonOffboarded, []string{"off"}}}},
		{"reactivated by any contact's order", day(10), []Event{placed(buyer, "o1", "A", day(1)), offboard(dm, "off", day(5)),
			placed(user, "o2", "B", day(8))},
			[]step{{journey.StageProspect, journey.ReasonFirstTouchpoint, []string{"o1"}},
				{journey.StageNewCustomer, journey.ReasonFirstOrder, []string{"o1"}},
				{journey.StageExCustomer, journey.ReasonOffboarded, []string{"off"}},
				{journey.StageNewCustomer, journey.ReasonReactivated, []string{"o2"}}}},
		{"another account's events do not count", day(10), []Event{placed(global, "g1", "A", day(1)), visit(dm, "v1", day(2))},
			[]step{{journey.StageProspect, journey.ReasonFirstTouchpoint, []string{"v1"}}}},
		{"events without an account are no account's", day(10), []Event{placed(buyer.in(""), "o1", "A", day(1))}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := NewState("acme")
			applyEach(b, s, c.now, c.evs)
			got := s.Explain()
			if len(got) != len(c.want) {
				t.Fatalf("history %+v, want %d steps %+v", got, len(c.want), c.want)
			}
			for i, w := range c.want {
				g := got[i]
				if g.To != w.stage || g.Reason != w.reason || !reflect.DeepEqual(g.Causes, w.causes) {
					t.Errorf("step %d = %s/%s %v, want %s/%s %v", i, g.To, g.Reason, g.Causes, w.stage, w.reason, w.causes)
				}
				if g.RulesVersion != RulesVersion {
					t.Errorf("step %d rules version %q, want %q", i, g.RulesVersion, RulesVersion)
				}
			}
		})
	}
}

func TestInactivityNeedsTheSweep(t *testing.T) {
	t.Parallel()
	b := rulebook(t)
	s := NewState("acme")
	b.Apply(s, day(2), []Event{placed(buyer, "o1", "A", day(1))}, nil)
	v := b.View(s, day(2))
	// The next change by time is the buyer leaving coverage, then the expiry.
	if v.Stage != journey.StageNewCustomer || !v.Next.Equal(day(91)) {
		t.Fatalf("stage %s next %s, want new_customer next %s", v.Stage, v.Next, day(91))
	}
	if v := b.View(s, day(200)); !v.Next.Equal(day(366)) {
		t.Fatalf("next %s, want the inactivity expiry %s", v.Next, day(366))
	}
	ch := b.Advance(s, day(367))
	if !ch.StageChanged() || ch.After.Stage != journey.StageExCustomer {
		t.Fatalf("advance: %+v, want the stage to become ex_customer", ch)
	}
	if ch := b.Advance(s, day(368)); ch.Changed() {
		t.Fatalf("a second advance changed %+v", ch)
	}
}

func TestRoles(t *testing.T) {
	t.Parallel()
	b := rulebook(t)
	cases := []struct {
		name string
		evs  []Event
		want string
	}{
		{"the latest dmu_role wins", []Event{visit(infl, "v1", day(1)), visit(infl.as(RoleDecisionMaker), "v2", day(5))}, RoleDecisionMaker},
		{"a late event with an older role does not", []Event{visit(infl.as(RoleDecisionMaker), "v2", day(5)), visit(infl, "v1", day(1))}, RoleDecisionMaker},
		{"an event without a role keeps the role", []Event{visit(infl, "v1", day(1)), visit(infl.as(""), "v2", day(5))}, RoleInfluencer},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := NewState("acme")
			applyEach(b, s, day(10), c.evs)
			v := b.View(s, day(10))
			if len(v.Members) != 1 || v.Members[0].Role != c.want {
				t.Fatalf("members %+v, want one %s", v.Members, c.want)
			}
		})
	}
}

func TestCoverage(t *testing.T) {
	t.Parallel()
	b := rulebook(t)
	evs := []Event{visit(dm, "v1", day(20)), visit(buyer, "v2", day(50)), visit(user, "v3", day(95)), visit(infl.as(""), "v4", day(99))}
	cases := []struct {
		now       time.Time
		coverage  []string
		next      time.Time
		uncovered int
	}{
		{day(100), []string{RoleDecisionMaker, RoleBuyer, RoleUser}, day(110), 2}, // a contact without a role covers none
		{day(110), []string{RoleDecisionMaker, RoleBuyer, RoleUser}, day(140), 2}, // the window is inclusive
		{day(110.1), []string{RoleBuyer, RoleUser}, day(140), 3},
		{day(200), []string{}, time.Time{}, 5},
	}
	s := NewState("acme")
	applyEach(b, s, day(0), evs)
	for _, c := range cases {
		v := b.View(s, c.now)
		if !reflect.DeepEqual(v.Coverage, c.coverage) || len(v.Uncovered) != c.uncovered || !v.Next.Equal(c.next) {
			t.Errorf("at %s: coverage %v uncovered %v next %s, want %v (%d uncovered) next %s",
				c.now, v.Coverage, v.Uncovered, v.Next, c.coverage, c.uncovered, c.next)
		}
	}
}

func TestCoverageGap(t *testing.T) {
	t.Parallel()
	b := rulebook(t)
	cases := []struct {
		name string
		evs  []Event
		now  time.Time
		gap  bool
		open []string
	}{
		{"an open quote without a decision maker", []Event{quote(infl, "q1", "Q1", QuoteSent, day(1))}, day(2), true, []string{"Q1"}},
		{"a requested quote is not open", []Event{quote(infl, "q1", "Q1", "requested", day(1))}, day(2), false, []string{}},
		{"the decision maker engaged within 30 days", []Event{visit(dm, "v1", day(0)), quote(infl, "q1", "Q1", QuoteSent, day(1))},
			day(30), false, []string{"Q1"}},
		{"the decision maker engaged more than 30 days ago", []Event{visit(dm, "v1", day(0)), quote(infl, "q1", "Q1", QuoteSent, day(1))},
			day(31), true, []string{"Q1"}},
		{"a decision maker's late event closes the gap",
			[]Event{quote(infl, "q1", "Q1", QuoteSent, day(1)), visit(dm, "v-old", day(-100)), visit(dm, "v-late", day(20))},
			day(40), false, []string{"Q1"}},
		{"a decision maker's late event from long ago does not",
			[]Event{quote(infl, "q1", "Q1", QuoteSent, day(1)), visit(dm, "v-late", day(-100))}, day(40), true, []string{"Q1"}},
		{"an accepted quote is closed", []Event{quote(infl, "q1", "Q1", QuoteSent, day(1)), quote(dm.in("acme"), "q2", "Q1", QuoteAccepted, day(2))},
			day(100), false, []string{}},
		{"a closing that arrives before the sending", []Event{quote(dm, "q2", "Q1", QuoteRejected, day(2)), quote(infl, "q1", "Q1", QuoteSent, day(1))},
			day(100), false, []string{}},
		{"expired", []Event{quote(infl, "q1", "Q1", QuoteSent, day(1)), quote(infl, "q2", "Q1", QuoteExpired, day(31))}, day(100), false, []string{}},
		{"a decision maker who moved away does not count",
			[]Event{visit(dm, "v1", day(0)), quote(infl, "q1", "Q1", QuoteSent, day(1)), visit(dm.in("globex"), "v2", day(2))},
			day(3), true, []string{"Q1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := NewState("acme")
			applyEach(b, s, day(0), c.evs)
			v := b.View(s, c.now)
			if v.Gap != c.gap || !reflect.DeepEqual(v.OpenQuotes, c.open) {
				t.Fatalf("gap %v open %v, want gap %v open %v", v.Gap, v.OpenQuotes, c.gap, c.open)
			}
		})
	}
}

func TestGapOpensWithTime(t *testing.T) {
	t.Parallel()
	b := rulebook(t)
	s := NewState("acme")
	b.Apply(s, day(1), []Event{visit(dm, "v1", day(0)), quote(infl, "q1", "Q1", QuoteSent, day(1))}, nil)
	if v := b.View(s, day(1)); v.Gap || !v.Next.Equal(day(30)) {
		t.Fatalf("gap %v next %s, want no gap until %s", v.Gap, v.Next, day(30))
	}
	ch := b.Advance(s, day(30.5))
	if !ch.GapOpened() {
		t.Fatalf("advance past the gap window: %+v, want the gap to open", ch)
	}
}

func TestAccountNPS(t *testing.T) {
	t.Parallel()
	b := rulebook(t)
	s := NewState("acme")
	applyEach(b, s, day(0), []Event{
		survey(dm, "s1", 3, day(1)), survey(dm, "s2", 10, day(5)), // dora counts once, with 10
		survey(buyer, "s3", 9, day(2)),
		survey(infl, "s4", 6, day(3)),
		survey(user, "s5", 8, day(4)),
		survey(global, "s6", 0, day(4)), // another account's
	})
	v := b.View(s, day(10))
	want := journey.NPSResult{Value: 25, Respondents: 4, Promoters: 2, Passives: 1, Detractors: 1, OK: true}
	if v.NPS != want {
		t.Fatalf("nps %+v, want %+v", v.NPS, want)
	}
	if v.AtRisk {
		t.Fatalf("an influencer detractor made the account at risk: %v", v.AtRiskReasons)
	}
	if s := NewState("none"); b.View(s, day(1)).NPS.OK {
		t.Fatal("an account without answers has an NPS")
	}
}

func TestAtRisk(t *testing.T) {
	t.Parallel()
	b := rulebook(t)
	cases := []struct {
		name    string
		evs     []Event
		reasons []string
	}{
		{"a detractor decision maker", []Event{survey(dm, "s1", 4, day(1))}, []string{"detractor_decision_maker"}},
		{"a detractor buyer", []Event{survey(buyer, "s1", 6, day(1))}, []string{"detractor_buyer"}},
		{"a detractor user is not", []Event{survey(user, "s1", 0, day(1))}, []string{}},
		{"a decision maker who answered better later", []Event{survey(dm, "s2", 9, day(2)), survey(dm, "s1", 4, day(1))}, []string{}},
		{"any open complaint", []Event{complaint(user, "c1", "K1", journey.StatusOpened, day(1))}, []string{"open_complaint"}},
		{"a resolved complaint, resolution first", []Event{complaint(user, "c2", "K1", journey.StatusResolved, day(2)),
			complaint(user, "c1", "K1", journey.StatusOpened, day(1))}, []string{}},
		{"a detractor buyer who moved away", []Event{survey(buyer, "s1", 2, day(1)), visit(buyer.in("globex"), "v1", day(2))}, []string{}},
		{"all of them", []Event{survey(dm, "s1", 1, day(1)), survey(buyer, "s2", 1, day(1)),
			complaint(infl, "c1", "K1", journey.StatusOpened, day(1))},
			[]string{"detractor_decision_maker", "detractor_buyer", "open_complaint"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := NewState("acme")
			var last Change
			for i := range c.evs {
				last = b.Apply(s, day(3), c.evs[i:i+1], nil)
			}
			v := b.View(s, day(3))
			if !reflect.DeepEqual(v.AtRiskReasons, c.reasons) || v.AtRisk != (len(c.reasons) > 0) {
				t.Fatalf("at risk %v %v, want %v", v.AtRisk, v.AtRiskReasons, c.reasons)
			}
			if last.After.AtRisk != v.AtRisk {
				t.Fatalf("change flags %+v disagree with the view", last.After)
			}
		})
	}
}

func TestContactMovesAccounts(t *testing.T) {
	t.Parallel()
	b := rulebook(t)
	moved := buyer.in("globex")
	evs := []Event{
		visit(dm, "v1", day(0)),
		placed(buyer, "o1", "A", day(1)),
		survey(buyer, "s1", 2, day(2)),
		placed(moved, "o2", "B", day(10)), // bob now orders for globex
		visit(buyer, "v-late", day(5)),    // a late event of acme from before the move
	}
	acme, globex := NewState("acme"), NewState("globex")
	for i := range evs {
		b.Apply(acme, day(20), evs[i:i+1], nil)
		b.Apply(globex, day(20), evs[i:i+1], nil)
	}
	va, vg := b.View(acme, day(20)), b.View(globex, day(20))
	if len(va.Members) != 1 || va.Members[0].ContactID != "dora" || va.Former != 1 {
		t.Errorf("acme members %+v former %d, want dora and one former member", va.Members, va.Former)
	}
	if va.Stage != journey.StageNewCustomer || len(va.History) != 2 || va.History[1].Causes[0] != "o1" {
		t.Errorf("acme history %+v: the order placed for acme must stay acme's", va.History)
	}
	if va.AtRisk || va.NPS.OK {
		t.Errorf("acme still counts the moved buyer's answer: at risk %v nps %+v", va.AtRisk, va.NPS)
	}
	if len(vg.Members) != 1 || vg.Members[0].ContactID != "bob" || vg.Members[0].Role != RoleBuyer {
		t.Errorf("globex members %+v, want bob the buyer", vg.Members)
	}
	if vg.Stage != journey.StageNewCustomer || vg.History[1].Causes[0] != "o2" || len(vg.History) != 2 {
		t.Errorf("globex history %+v, want its own order only", vg.History)
	}
	// An event for acme after the move brings bob back: the latest wins.
	b.Apply(acme, day(20), []Event{visit(buyer, "v-back", day(15))}, nil)
	if v := b.View(acme, day(20)); len(v.Members) != 2 {
		t.Errorf("after bob's later acme event: members %+v, want 2", v.Members)
	}
}

func TestPlacementsFromTheDirectory(t *testing.T) {
	t.Parallel()
	b := rulebook(t)
	// acme heard of bob only through his old event; the directory tells it
	// where he is now.
	var c Contact
	c.CustomerID, c.ContactID = buyer.customer, buyer.contact
	old := visit(buyer, "v1", day(1))
	now := visit(buyer.in("globex"), "v2", day(5))
	c.Observe(&now)
	c.Observe(&old)
	if got := c.AccountIDs(); !reflect.DeepEqual(got, []string{"acme", "globex"}) {
		t.Fatalf("accounts %v", got)
	}
	p, ok := c.Latest()
	if !ok || p.AccountID != "globex" {
		t.Fatalf("latest %+v %v, want globex", p, ok)
	}
	if c.Observe(&old) {
		t.Fatal("observing an event twice changed the entry")
	}
	s := NewState("acme")
	b.Apply(s, day(6), []Event{old}, map[string]Placement{ContactKey(c.CustomerID, c.ContactID): p})
	if v := b.View(s, day(6)); len(v.Members) != 0 || v.Former != 1 {
		t.Fatalf("members %+v former %d, want bob as a former member", v.Members, v.Former)
	}
}

func TestRedeliveryIsNoOp(t *testing.T) {
	t.Parallel()
	b := rulebook(t)
	evs := []Event{visit(dm, "v1", day(0)), placed(buyer, "o1", "A", day(1)), survey(buyer, "s1", 2, day(2)),
		quote(infl, "q1", "Q1", QuoteSent, day(3)), complaint(user, "c1", "K", journey.StatusOpened, day(4))}
	s := NewState("acme")
	b.Apply(s, day(10), evs, nil)
	before, _ := json.Marshal(s)
	for i := range evs {
		if ch := b.Apply(s, day(10), evs[i:i+1], nil); ch.Changed() {
			t.Fatalf("re-applying %s changed %+v", evs[i].ID, ch)
		}
	}
	after, _ := json.Marshal(s)
	if string(before) != string(after) {
		t.Fatalf("state changed on redelivery:\n%s\n%s", before, after)
	}
}

func TestForget(t *testing.T) {
	t.Parallel()
	b := rulebook(t)
	s := NewState("acme")
	b.Apply(s, day(10), []Event{placed(buyer, "o1", "A", day(1)), survey(user, "s1", 1, day(2)),
		quote(user, "q1", "Q1", QuoteSent, day(3))}, nil)
	hist := len(s.Explain())
	if !s.Forget("cust-2") || s.Forget("cust-2") {
		t.Fatal("forget must report the first removal only")
	}
	v := b.View(s, day(10))
	if len(v.Members) != 1 || v.NPS.OK || len(v.OpenQuotes) != 0 || len(v.History) != hist {
		t.Fatalf("after forget: members %+v nps %+v quotes %v history %d, want bob only and the same history",
			v.Members, v.NPS, v.OpenQuotes, len(v.History))
	}
}

// A forgotten customer's orders stay counted, under a pseudonym: the
// state no longer names the customer, and the stage does not move.
func TestForgetKeepsOrdersUnderAPseudonym(t *testing.T) {
	t.Parallel()
	b := rulebook(t)
	s := NewState("acme")
	b.Apply(s, day(10), []Event{placed(buyer, "o1", "A", day(1)), placed(user, "o1", "A", day(2))}, nil)
	stage, n := b.View(s, day(10)).Stage, s.Stage.CountedOrders()
	if !s.Forget(user.customer) {
		t.Fatal("nothing forgotten")
	}
	raw, _ := json.Marshal(s)
	if strings.Contains(string(raw), user.customer+"\\u001f") || strings.Contains(string(raw), `"`+user.customer+`"`) {
		t.Fatalf("the state still names %s: %s", user.customer, raw)
	}
	if got := b.View(s, day(10)).Stage; got != stage || s.Stage.CountedOrders() != n {
		t.Fatalf("stage %s orders %d after forget, want %s and %d", got, s.Stage.CountedOrders(), stage, n)
	}
	if _, ok := s.Stage.Orders[ContactKey(Pseudonym(user.customer), "A")]; !ok {
		t.Fatalf("orders %v: the customer's order is not under its pseudonym", s.Stage.Orders)
	}
}

func TestRulesValidateAndVersion(t *testing.T) {
	t.Parallel()
	if DefaultRules().Version() != RulesVersion {
		t.Fatalf("default version %q", DefaultRules().Version())
	}
	r := DefaultRules()
	r.GapWindow = 14 * journey.Day
	if v := r.Version(); v == RulesVersion || v != "account-rules/1+loyal=3/8760h0m0s,inactive=8760h0m0s,coverage=2160h0m0s,gap=336h0m0s" {
		t.Fatalf("custom version %q", v)
	}
	b, err := New(r)
	if err != nil {
		t.Fatal(err)
	}
	s := NewState("acme")
	b.Apply(s, day(1), []Event{visit(dm, "v1", day(0))}, nil)
	if got := s.Explain()[0].RulesVersion; got != r.Version() {
		t.Fatalf("transition version %q, want %q", got, r.Version())
	}
	for _, bad := range []func(*Rules){
		func(r *Rules) { r.CoverageWindow = 0 },
		func(r *Rules) { r.GapWindow = -1 },
		func(r *Rules) { r.Stage.LoyalOrders = 0 },
		func(r *Rules) { r.Stage.InactiveAfter = 0 },
	} {
		r := DefaultRules()
		bad(&r)
		if _, err := New(r); !errors.Is(err, ErrRules) {
			t.Errorf("rules %+v: err %v, want ErrRules", r, err)
		}
	}
}

// randomAccountEvents makes a messy B2B history: contacts of two customers
// in two accounts (one moves), reusing order, quote and complaint ids, with
// coinciding times.
func randomAccountEvents(r *rand.Rand, n int) []Event {
	people := []who{dm, buyer, infl, user, buyer.in("globex"), user.in("globex"), dm.as(RoleInfluencer), buyer.in("")}
	kinds := []func(w who, id string, at time.Time) Event{
		func(w who, id string, at time.Time) Event { return visit(w, id, at) },
		func(w who, id string, at time.Time) Event { return placed(w, id, "o"+string(rune('A'+r.IntN(3))), at) },
		func(w who, id string, at time.Time) Event {
			return cancelled(w, id, "o"+string(rune('A'+r.IntN(3))), at)
		},
		func(w who, id string, at time.Time) Event { return survey(w, id, r.IntN(11), at) },
		func(w who, id string, at time.Time) Event {
			return complaint(w, id, "k"+string(rune('A'+r.IntN(2))), []string{journey.StatusOpened, journey.StatusResolved}[r.IntN(2)], at)
		},
		func(w who, id string, at time.Time) Event {
			return quote(w, id, "q"+string(rune('A'+r.IntN(2))), []string{QuoteSent, QuoteAccepted, QuoteRejected, QuoteExpired}[r.IntN(4)], at)
		},
		func(w who, id string, at time.Time) Event { return offboard(w, id, at) },
	}
	evs := make([]Event, n)
	for i := range evs {
		w := people[r.IntN(len(people))]
		at := day(float64(r.IntN(800)) / 2)
		k := kinds[r.IntN(len(kinds))]
		if r.IntN(3) > 0 {
			k = kinds[r.IntN(2)] // mostly visits and orders
		}
		evs[i] = k(w, "e"+string(rune('a'+i/26))+string(rune('a'+i%26)), at)
	}
	return evs
}

// The state (facts and derived history) and the view are the same whatever
// order the events of the account's contacts arrive in, in whatever chunks,
// with redeliveries.
func TestPropertyArrivalOrderDoesNotMatter(t *testing.T) {
	t.Parallel()
	b := rulebook(t)
	r := rand.New(rand.NewPCG(17, 2026))
	now := day(500)
	for round := 0; round < 300; round++ {
		evs := randomAccountEvents(r, 1+r.IntN(40))
		for _, acct := range []string{"acme", "globex"} {
			ref := NewState(acct)
			b.Apply(ref, now, evs, nil)
			want, _ := json.Marshal(ref)
			wantView, _ := json.Marshal(b.View(ref, now))
			for perm := 0; perm < 4; perm++ {
				shuffled := append([]Event(nil), evs...)
				r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
				if perm%2 == 1 { // redeliver a few
					shuffled = append(shuffled, shuffled[:r.IntN(len(shuffled)+1)]...)
				}
				s := NewState(acct)
				for i := 0; i < len(shuffled); {
					k := min(1+r.IntN(4), len(shuffled)-i)
					b.Apply(s, now, shuffled[i:i+k], nil)
					i += k
				}
				got, _ := json.Marshal(s)
				gotView, _ := json.Marshal(b.View(s, now))
				if string(got) != string(want) || string(gotView) != string(wantView) {
					t.Fatalf("round %d %s perm %d: state differs by arrival order\nwant %s\ngot  %s\nview want %s\nview got  %s",
						round, acct, perm, want, got, wantView, gotView)
				}
			}
		}
	}
}

func TestStateJSONRoundTrip(t *testing.T) {
	t.Parallel()
	b := rulebook(t)
	r := rand.New(rand.NewPCG(5, 6))
	s := NewState("acme")
	b.Apply(s, day(500), randomAccountEvents(r, 80), nil)
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back State
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	v1, _ := json.Marshal(b.View(s, day(500)))
	v2, _ := json.Marshal(b.View(&back, day(500)))
	if string(v1) != string(v2) {
		t.Fatalf("view differs after a JSON round trip:\n%s\n%s", v1, v2)
	}
	// And applying to the decoded state goes on as on the original.
	more := randomAccountEvents(rand.New(rand.NewPCG(7, 8)), 20)
	for i := range more {
		more[i].ID = "more-" + more[i].ID
	}
	b.Apply(s, day(501), more, nil)
	b.Apply(&back, day(501), more, nil)
	x, _ := json.Marshal(s)
	y, _ := json.Marshal(&back)
	if string(x) != string(y) {
		t.Fatalf("state differs after applying to a decoded copy:\n%s\n%s", x, y)
	}
}

// The flags every apply computes are the view's.
func TestFlagsAgreeWithTheView(t *testing.T) {
	t.Parallel()
	b := rulebook(t)
	r := rand.New(rand.NewPCG(23, 24))
	for round := 0; round < 300; round++ {
		s := NewState([]string{"acme", "globex"}[round%2])
		b.Apply(s, day(400), randomAccountEvents(r, 1+r.IntN(40)), nil)
		for _, now := range []time.Time{day(0), day(100), day(300), day(400), day(800)} {
			v := b.View(s, now)
			if got, want := b.flags(s, now), v.Flags(); got != want {
				t.Fatalf("round %d at %s: flags %+v, view %+v", round, now, got, want)
			}
		}
	}
}
