package journey

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/klantreis/journey/pkg/touchpoint"
)

var t0 = time.Date(2025, 1, 1, 10, 0, 0, 0, time.UTC)

func day(d float64) time.Time { return t0.Add(time.Duration(d * float64(Day))) }

// b builds events with increasing stream sequences, like a stream would.
type builder struct{ seq uint64 }

func (b *builder) ev(id string, k touchpoint.Kind, at time.Time) Event {
	b.seq++
	return Event{Source: "test", ID: id, Seq: b.seq, Time: at, Kind: k}
}
func (b *builder) visit(id string, at time.Time) Event { return b.ev(id, touchpoint.KindVisit, at) }
func (b *builder) quote(id string, at time.Time) Event { return b.ev(id, touchpoint.KindQuote, at) }
func (b *builder) order(id, order, status string, at time.Time) Event {
	e := b.ev(id, touchpoint.KindOrder, at)
	e.OrderID, e.Status = order, status
	return e
}
func (b *builder) placed(id, order string, at time.Time) Event {
	return b.order(id, order, StatusPlaced, at)
}
func (b *builder) cancelled(id, order string, at time.Time) Event {
	return b.order(id, order, StatusCancelled, at)
}
func (b *builder) complaint(id, c, status string, at time.Time) Event {
	e := b.ev(id, touchpoint.KindComplaint, at)
	e.ComplaintID, e.Status = c, status
	return e
}
func (b *builder) survey(id string, score int, at time.Time) Event {
	e := b.ev(id, touchpoint.KindSurvey, at)
	e.Score, e.Comment = score, "comment "+id
	return e
}
func (b *builder) offboard(id string, at time.Time) Event {
	return b.ev(id, touchpoint.KindOffboarded, at)
}

func rulebook(t testing.TB) *Rulebook {
	t.Helper()
	rb, err := NewRulebook(DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	return rb
}

// step is what history should look like: "from>to@day:reason[causes]".
func render(h []Transition) []string {
	out := make([]string, len(h))
	for i, t := range h {
		d := t.At.Sub(t0).Hours() / 24
		out[i] = fmt.Sprintf("%s>%s@%g:%s[%s]", t.From, t.To, d, t.Reason, strings.Join(t.Causes, ","))
	}
	return out
}

func TestStageRules(t *testing.T) {
	t.Parallel()
	type tc struct {
		name   string
		events func(b *builder) []Event
		now    time.Time
		want   []string
		stage  Stage
	}
	cases := []tc{
		{
			name:   "first touchpoint makes a prospect",
			events: func(b *builder) []Event { return []Event{b.visit("v1", day(0)), b.visit("v2", day(3))} },
			now:    day(10),
			want:   []string{"none>prospect@0:first_touchpoint[v1]"},
			stage:  StageProspect,
		},
		{
			name:   "a counted order as first touchpoint makes two transitions at once",
			events: func(b *builder) []Event { return []Event{b.placed("o1", "A", day(0))} },
			now:    day(10),
			want:   []string{"none>prospect@0:first_touchpoint[o1]", "prospect>new_customer@0:first_order[o1]"},
			stage:  StageNewCustomer,
		},
		{
			name: "prospect becomes new customer on first counted order",
			events: func(b *builder) []Event {
				return []Event{b.visit("v1", day(0)), b.quote("q1", day(2)), b.placed("o1", "A", day(5))}
			},
			now:   day(10),
			want:  []string{"none>prospect@0:first_touchpoint[v1]", "prospect>new_customer@5:first_order[o1]"},
			stage: StageNewCustomer,
		},
		{
			name: "cancel of the only order moves back to prospect",
			events: func(b *builder) []Event {
				return []Event{b.visit("v1", day(0)), b.placed("o1", "A", day(5)), b.cancelled("c1", "A", day(6))}
			},
			now: day(10),
			want: []string{"none>prospect@0:first_touchpoint[v1]", "prospect>new_customer@5:first_order[o1]",
				"new_customer>prospect@6:order_cancelled[c1]"},
			stage: StageProspect,
		},
		{
			name: "an order cancelled before it is placed never counts",
			events: func(b *builder) []Event {
				return []Event{b.visit("v1", day(0)), b.cancelled("c1", "A", day(4)), b.placed("o1", "A", day(5))}
			},
			now:   day(10),
			want:  []string{"none>prospect@0:first_touchpoint[v1]"},
			stage: StageProspect,
		},
		{
			name: "a placed order_id counts once",
			events: func(b *builder) []Event {
				return []Event{b.placed("o1", "A", day(0)), b.placed("o1b", "A", day(1)), b.placed("o1c", "A", day(2))}
			},
			now:   day(10),
			want:  []string{"none>prospect@0:first_touchpoint[o1]", "prospect>new_customer@0:first_order[o1]"},
			stage: StageNewCustomer,
		},
		{
			name: "third order on day 365 makes loyal (span inclusive)",
			events: func(b *builder) []Event {
				return []Event{b.placed("o1", "A", day(0)), b.placed("o2", "B", day(200)), b.placed("o3", "C", day(365))}
			},
			now: day(400),
			want: []string{"none>prospect@0:first_touchpoint[o1]", "prospect>new_customer@0:first_order[o1]",
				"new_customer>loyal_customer@365:repeat_orders[o1,o2,o3]"},
			stage: StageLoyalCustomer,
		},
		{
			name: "third order on day 366 does not make loyal",
			events: func(b *builder) []Event {
				return []Event{b.placed("o1", "A", day(0)), b.placed("o2", "B", day(200)), b.placed("o3", "C", day(366))}
			},
			now:   day(400),
			want:  []string{"none>prospect@0:first_touchpoint[o1]", "prospect>new_customer@0:first_order[o1]"},
			stage: StageNewCustomer,
		},
		{
			name:   "inactive: ex exactly 365 days after the last counted order, at the expiry",
			events: func(b *builder) []Event { return []Event{b.placed("o1", "A", day(0))} },
			now:    day(365),
			want: []string{"none>prospect@0:first_touchpoint[o1]", "prospect>new_customer@0:first_order[o1]",
				"new_customer>ex_customer@365:inactive[o1]"},
			stage: StageExCustomer,
		},
		{
			name:   "not yet inactive one second before the expiry",
			events: func(b *builder) []Event { return []Event{b.placed("o1", "A", day(0))} },
			now:    day(365).Add(-time.Second),
			want:   []string{"none>prospect@0:first_touchpoint[o1]", "prospect>new_customer@0:first_order[o1]"},
			stage:  StageNewCustomer,
		},
		{
			name: "inactive noticed late keeps the expiry as transition time",
			events: func(b *builder) []Event {
				return []Event{b.placed("o1", "A", day(0)), b.placed("o2", "B", day(100))}
			},
			now: day(900),
			want: []string{"none>prospect@0:first_touchpoint[o1]", "prospect>new_customer@0:first_order[o1]",
				"new_customer>ex_customer@465:inactive[o2]"},
			stage: StageExCustomer,
		},
		{
			name: "an order exactly at the expiry comes too late: ex, then reactivated",
			events: func(b *builder) []Event {
				return []Event{b.placed("o1", "A", day(0)), b.placed("o2", "B", day(365))}
			},
			now: day(366),
			want: []string{"none>prospect@0:first_touchpoint[o1]", "prospect>new_customer@0:first_order[o1]",
				"new_customer>ex_customer@365:inactive[o1]", "ex_customer>new_customer@365:reactivated[o2]"},
			stage: StageNewCustomer,
		},
		{
			name: "an order strictly before the expiry keeps the customer",
			events: func(b *builder) []Event {
				return []Event{b.placed("o1", "A", day(0)), b.placed("o2", "B", day(365).Add(-time.Millisecond))}
			},
			now:   day(366),
			want:  []string{"none>prospect@0:first_touchpoint[o1]", "prospect>new_customer@0:first_order[o1]"},
			stage: StageNewCustomer,
		},
		{
			name: "loyal customer becomes ex when inactive",
			events: func(b *builder) []Event {
				return []Event{b.placed("o1", "A", day(0)), b.placed("o2", "B", day(1)), b.placed("o3", "C", day(2))}
			},
			now: day(500),
			want: []string{"none>prospect@0:first_touchpoint[o1]", "prospect>new_customer@0:first_order[o1]",
				"new_customer>loyal_customer@2:repeat_orders[o1,o2,o3]", "loyal_customer>ex_customer@367:inactive[o3]"},
			stage: StageExCustomer,
		},
		{
			name: "offboarding a customer makes them ex at once",
			events: func(b *builder) []Event {
				return []Event{b.placed("o1", "A", day(0)), b.offboard("x1", day(10))}
			},
			now: day(20),
			want: []string{"none>prospect@0:first_touchpoint[o1]", "prospect>new_customer@0:first_order[o1]",
				"new_customer>ex_customer@10:offboarded[x1]"},
			stage: StageExCustomer,
		},
		{
			name: "offboarding a prospect keeps the stage",
			events: func(b *builder) []Event {
				return []Event{b.visit("v1", day(0)), b.offboard("x1", day(10))}
			},
			now:   day(20),
			want:  []string{"none>prospect@0:first_touchpoint[v1]"},
			stage: StageProspect,
		},
		{
			name: "offboard then order: reactivated",
			events: func(b *builder) []Event {
				return []Event{b.placed("o1", "A", day(0)), b.offboard("x1", day(10)), b.placed("o2", "B", day(20))}
			},
			now: day(30),
			want: []string{"none>prospect@0:first_touchpoint[o1]", "prospect>new_customer@0:first_order[o1]",
				"new_customer>ex_customer@10:offboarded[x1]", "ex_customer>new_customer@20:reactivated[o2]"},
			stage: StageNewCustomer,
		},
		{
			name: "offboard, order, cancel: back to ex",
			events: func(b *builder) []Event {
				return []Event{b.placed("o1", "A", day(0)), b.offboard("x1", day(10)), b.placed("o2", "B", day(20)), b.cancelled("c2", "B", day(21))}
			},
			now: day(30),
			want: []string{"none>prospect@0:first_touchpoint[o1]", "prospect>new_customer@0:first_order[o1]",
				"new_customer>ex_customer@10:offboarded[x1]", "ex_customer>new_customer@20:reactivated[o2]",
				"new_customer>ex_customer@21:order_cancelled[c2]"},
			stage: StageExCustomer,
		},
		{
			name: "reactivated customer needs three new orders to be loyal again",
			events: func(b *builder) []Event {
				return []Event{b.placed("o1", "A", day(0)), b.placed("o2", "B", day(1)), b.placed("o3", "C", day(2)),
					b.placed("o4", "D", day(400)), b.placed("o5", "E", day(401))}
			},
			now: day(402),
			want: []string{"none>prospect@0:first_touchpoint[o1]", "prospect>new_customer@0:first_order[o1]",
				"new_customer>loyal_customer@2:repeat_orders[o1,o2,o3]", "loyal_customer>ex_customer@367:inactive[o3]",
				"ex_customer>new_customer@400:reactivated[o4]"},
			stage: StageNewCustomer,
		},
		{
			name: "a cancellation that breaks the only 3-order span moves loyal back to new",
			events: func(b *builder) []Event {
				return []Event{b.placed("o1", "A", day(0)), b.placed("o2", "B", day(10)), b.placed("o3", "C", day(20)),
					b.cancelled("c2", "B", day(30))}
			},
			now: day(40),
			want: []string{"none>prospect@0:first_touchpoint[o1]", "prospect>new_customer@0:first_order[o1]",
				"new_customer>loyal_customer@20:repeat_orders[o1,o2,o3]", "loyal_customer>new_customer@30:order_cancelled[c2]"},
			stage: StageNewCustomer,
		},
		{
			name: "a cancellation that leaves a 3-order span keeps loyal",
			events: func(b *builder) []Event {
				return []Event{b.placed("o1", "A", day(0)), b.placed("o2", "B", day(10)), b.placed("o3", "C", day(20)),
					b.placed("o4", "D", day(25)), b.cancelled("c2", "B", day(30))}
			},
			now: day(40),
			want: []string{"none>prospect@0:first_touchpoint[o1]", "prospect>new_customer@0:first_order[o1]",
				"new_customer>loyal_customer@20:repeat_orders[o1,o2,o3]"},
			stage: StageLoyalCustomer,
		},
		{
			name: "cancelling the recent order after the older one's expiry makes ex",
			events: func(b *builder) []Event {
				return []Event{b.placed("o1", "A", day(0)), b.placed("o2", "B", day(300)), b.cancelled("c2", "B", day(400))}
			},
			now: day(401),
			want: []string{"none>prospect@0:first_touchpoint[o1]", "prospect>new_customer@0:first_order[o1]",
				"new_customer>ex_customer@400:order_cancelled[c2]"},
			stage: StageExCustomer,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rb := rulebook(t)
			evs := c.events(&builder{})
			// One at a time, as a consumer applies them.
			s := NewState("c1")
			for _, e := range evs {
				rb.Apply(s, c.now, e)
			}
			if got := render(s.History); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("history\n got %q\nwant %q", got, c.want)
			}
			if s.Stage() != c.stage {
				t.Fatalf("stage %s, want %s", s.Stage(), c.stage)
			}
			for _, tr := range s.History {
				if tr.RulesVersion != RulesVersion {
					t.Fatalf("rules version %q", tr.RulesVersion)
				}
			}
			// All at once in reverse arrival order gives the same.
			s2 := NewState("c1")
			rev := make([]Event, len(evs))
			for i := range evs {
				rev[len(evs)-1-i] = evs[i]
			}
			for _, e := range rev {
				rb.Apply(s2, c.now, e)
			}
			assertSame(t, s, s2)
		})
	}
}

func assertSame(t *testing.T, a, b *State) {
	t.Helper()
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Fatalf("states differ\n a %s\n b %s", ja, jb)
	}
}

func TestLateEventRewritesHistory(t *testing.T) {
	t.Parallel()
	rb := rulebook(t)
	b := &builder{}
	s := NewState("c1")
	rb.Apply(s, day(50), b.placed("o2", "B", day(10)))
	rb.Apply(s, day(50), b.placed("o3", "C", day(20)))
	if s.Stage() != StageNewCustomer {
		t.Fatalf("stage %s", s.Stage())
	}
	// A visit from before: the first touchpoint moves, the stage does not.
	ch := rb.Apply(s, day(50), b.visit("v0", day(1)))
	if !ch.Refolded || ch.StageChanged() || ch.HistoryFrom != 0 {
		t.Fatalf("late visit: %+v", ch)
	}
	want := []string{"none>prospect@1:first_touchpoint[v0]", "prospect>new_customer@10:first_order[o2]"}
	if got := render(s.History); !reflect.DeepEqual(got, want) {
		t.Fatalf("history %q", got)
	}
	// A late order makes the customer loyal as of day 20, and new at 5.
	ch = rb.Apply(s, day(50), b.placed("o1", "A", day(5)))
	want = []string{"none>prospect@1:first_touchpoint[v0]", "prospect>new_customer@5:first_order[o1]",
		"new_customer>loyal_customer@20:repeat_orders[o1,o2,o3]"}
	if got := render(s.History); !reflect.DeepEqual(got, want) {
		t.Fatalf("history %q", got)
	}
	if !ch.StageChanged() || ch.From != StageNewCustomer || ch.To != StageLoyalCustomer || ch.HistoryFrom != 1 || ch.OldHistoryLen != 2 {
		t.Fatalf("late order change: %+v", ch)
	}
	// The same late order delivered again changes nothing.
	again := Event{Source: "test", ID: "o1", Seq: 4, Time: day(5), Kind: touchpoint.KindOrder, OrderID: "A", Status: StatusPlaced}
	if ch := rb.Apply(s, day(50), again); ch.Changed() || ch.Refolded {
		t.Fatalf("redelivered late order: %+v", ch)
	}
}

func TestRedeliveryIsNoOp(t *testing.T) {
	t.Parallel()
	rb := rulebook(t)
	b := &builder{}
	evs := []Event{b.visit("v", day(0)), b.placed("o1", "A", day(1)), b.survey("s1", 3, day(2)),
		b.complaint("k1", "K", StatusOpened, day(3)), b.offboard("x", day(4))}
	s := NewState("c1")
	rb.Apply(s, day(10), evs...)
	before, _ := json.Marshal(s)
	for _, e := range evs {
		ch := rb.Apply(s, day(10), e)
		if ch.Changed() || ch.StageChanged() || ch.SatisfactionChanged() {
			t.Fatalf("replay of %s changed %+v", e.ID, ch)
		}
	}
	after, _ := json.Marshal(s)
	if string(before) != string(after) {
		t.Fatalf("replay changed the state")
	}
}

func TestSweepAdvance(t *testing.T) {
	t.Parallel()
	rb := rulebook(t)
	b := &builder{}
	s := NewState("c1")
	rb.Apply(s, day(1), b.placed("o1", "A", day(0)))
	if !s.Expires.Equal(day(365)) {
		t.Fatalf("expires %s", s.Expires)
	}
	if ch := rb.Advance(s, day(364)); ch.StageChanged() || ch.HistoryFrom != -1 {
		t.Fatalf("early advance %+v", ch)
	}
	ch := rb.Advance(s, day(366))
	if !ch.StageChanged() || ch.To != StageExCustomer || ch.HistoryFrom != 2 || !s.Expires.IsZero() {
		t.Fatalf("advance %+v expires %s", ch, s.Expires)
	}
	if got := s.History[2].At; !got.Equal(day(365)) {
		t.Fatalf("ex at %s", got)
	}
	// A later event keeps the expiry transition in the fold, unchanged.
	ch = rb.Apply(s, day(400), b.visit("v", day(399)))
	if ch.HistoryFrom != -1 || ch.StageChanged() || len(s.History) != 3 {
		t.Fatalf("visit after expiry %+v fold %d", ch, s.Fold.Len)
	}
	// A late order before the expiry removes it.
	ch = rb.Apply(s, day(400), b.placed("o2", "B", day(100)))
	if s.Stage() != StageNewCustomer || ch.To != StageNewCustomer || len(s.History) != 2 || ch.HistoryFrom != 2 || ch.OldHistoryLen != 3 {
		t.Fatalf("late order %+v %q", ch, render(s.History))
	}
	if !s.Expires.Equal(day(465)) {
		t.Fatalf("expires %s", s.Expires)
	}
}

func TestMilestones(t *testing.T) {
	t.Parallel()
	rb := rulebook(t)
	b := &builder{}
	s := NewState("c1")
	rb.Apply(s, day(100), b.visit("v", day(0)), b.quote("q", day(2)), b.placed("o1", "A", day(3)),
		b.cancelled("c1", "A", day(4)), b.placed("o2", "B", day(5)), b.placed("o3", "C", day(6)), b.placed("o4", "D", day(7)))
	m := s.Milestones()
	if !m.FirstVisit.Equal(day(0)) || !m.FirstQuote.Equal(day(2)) || !m.FirstOrder.Equal(day(5)) || !m.FirstLoyal.Equal(day(7)) {
		t.Fatalf("milestones %+v", m)
	}
	if s.CountedOrders() != 3 {
		t.Fatalf("counted %d", s.CountedOrders())
	}
}

func TestOffboardedFlag(t *testing.T) {
	t.Parallel()
	rb := rulebook(t)
	b := &builder{}
	s := NewState("c1")
	rb.Apply(s, day(100), b.visit("v", day(0)), b.offboard("x", day(2)))
	if ok, at := s.Offboarded(); !ok || !at.Equal(day(2)) || s.Stage() != StageProspect {
		t.Fatalf("offboarded prospect: %v %s %s", ok, at, s.Stage())
	}
	rb.Apply(s, day(100), b.placed("o", "A", day(3)))
	if ok, _ := s.Offboarded(); ok || s.Stage() != StageNewCustomer {
		t.Fatalf("ordering clears offboarded: %v %s", ok, s.Stage())
	}
}

func TestCategory(t *testing.T) {
	t.Parallel()
	for score, want := range map[int]Category{0: CategoryDetractor, 6: CategoryDetractor, 7: CategoryPassive, 8: CategoryPassive,
		9: CategoryPromoter, 10: CategoryPromoter, -1: CategoryNone, 11: CategoryNone} {
		if got := CategoryOf(score); got != want {
			t.Errorf("CategoryOf(%d) = %q, want %q", score, got, want)
		}
	}
}

func TestSatisfaction(t *testing.T) {
	t.Parallel()
	type want struct {
		score      int
		cat        Category
		responses  int
		open       int
		atRisk     bool
		lastCompAt time.Time
	}
	cases := []struct {
		name   string
		events func(b *builder) []Event
		want   want
	}{
		{"no answer", func(b *builder) []Event { return []Event{b.visit("v", day(0))} }, want{-1, CategoryNone, 0, 0, false, time.Time{}}},
		{"score 6 is a detractor and at risk", func(b *builder) []Event { return []Event{b.survey("s", 6, day(0))} }, want{6, CategoryDetractor, 1, 0, true, time.Time{}}},
		{"score 7 is passive", func(b *builder) []Event { return []Event{b.survey("s", 7, day(0))} }, want{7, CategoryPassive, 1, 0, false, time.Time{}}},
		{"score 8 is passive", func(b *builder) []Event { return []Event{b.survey("s", 8, day(0))} }, want{8, CategoryPassive, 1, 0, false, time.Time{}}},
		{"score 9 is a promoter", func(b *builder) []Event { return []Event{b.survey("s", 9, day(0))} }, want{9, CategoryPromoter, 1, 0, false, time.Time{}}},
		{"latest answer by time wins, not arrival", func(b *builder) []Event {
			return []Event{b.survey("s2", 10, day(5)), b.survey("s1", 2, day(1))}
		}, want{10, CategoryPromoter, 2, 0, false, time.Time{}}},
		{"open complaint is at risk", func(b *builder) []Event {
			return []Event{b.survey("s", 10, day(0)), b.complaint("k1", "K", StatusOpened, day(1))}
		}, want{10, CategoryPromoter, 1, 1, true, day(1)}},
		{"complaint opened and resolved is not at risk", func(b *builder) []Event {
			return []Event{b.complaint("k1", "K", StatusOpened, day(1)), b.complaint("k2", "K", StatusResolved, day(2))}
		}, want{-1, CategoryNone, 0, 0, false, day(1)}},
		{"resolution arriving before the opening still closes it", func(b *builder) []Event {
			return []Event{b.complaint("k2", "K", StatusResolved, day(2)), b.complaint("k1", "K", StatusOpened, day(1))}
		}, want{-1, CategoryNone, 0, 0, false, day(1)}},
		{"open complaints counted by complaint_id", func(b *builder) []Event {
			return []Event{b.complaint("k1", "K", StatusOpened, day(1)), b.complaint("k1b", "K", StatusOpened, day(2)),
				b.complaint("k2", "L", StatusOpened, day(3)), b.complaint("k3", "M", StatusOpened, day(4)), b.complaint("k4", "M", StatusResolved, day(5))}
		}, want{-1, CategoryNone, 0, 2, true, day(4)}},
	}
	rb := rulebook(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := NewState("c")
			for _, e := range c.events(&builder{}) {
				rb.Apply(s, day(10), e)
			}
			got := s.Satisfaction()
			if got.Score != c.want.score || got.Category != c.want.cat || got.Responses != c.want.responses ||
				got.OpenComplaints != c.want.open || got.AtRisk != c.want.atRisk || !got.LastComplaintAt.Equal(c.want.lastCompAt) {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestSatisfactionChange(t *testing.T) {
	t.Parallel()
	rb := rulebook(t)
	b := &builder{}
	s := NewState("c")
	ch := rb.Apply(s, day(10), b.survey("s1", 9, day(1)))
	if !ch.SatisfactionChanged() || ch.BecameAtRisk() {
		t.Fatalf("first answer %+v", ch)
	}
	ch = rb.Apply(s, day(10), b.complaint("k", "K", StatusOpened, day(2)))
	if !ch.SatisfactionChanged() || !ch.BecameAtRisk() {
		t.Fatalf("complaint %+v", ch)
	}
	ch = rb.Apply(s, day(10), b.survey("s2", 3, day(3)))
	if !ch.SatisfactionChanged() || ch.BecameAtRisk() {
		t.Fatalf("detractor while at risk: %+v", ch)
	}
	if r := ch.SatisfactionAfter.AtRiskReasons(); !reflect.DeepEqual(r, []string{"detractor", "open_complaint"}) {
		t.Fatalf("reasons %v", r)
	}
	ch = rb.Apply(s, day(10), b.visit("v", day(4)))
	if ch.SatisfactionChanged() {
		t.Fatalf("visit changed satisfaction %+v", ch)
	}
}

func TestNPS(t *testing.T) {
	t.Parallel()
	resp := func(customer, contact string, d float64, score int) Response {
		return Response{CustomerID: customer, ContactID: contact, Time: day(d), Score: score}
	}
	textbook := func() []Response {
		var rs []Response
		for i := 0; i < 100; i++ {
			score := 10
			switch {
			case i >= 25 && i < 80:
				score = 7
			case i >= 80:
				score = 3
			}
			rs = append(rs, resp(fmt.Sprint("c", i), "", 1, score))
		}
		return rs
	}
	cases := []struct {
		name   string
		rs     []Response
		want   int
		wantOK bool
		n      int
	}{
		{"textbook 25/55/20 is +5", textbook(), 5, true, 100},
		{"no respondents has no value", nil, 0, false, 0},
		{"all promoters", []Response{resp("a", "", 1, 9), resp("b", "", 1, 10)}, 100, true, 2},
		{"all detractors", []Response{resp("a", "", 1, 0), resp("b", "", 1, 6)}, -100, true, 2},
		{"latest answer per respondent counts once", []Response{resp("a", "", 1, 0), resp("a", "", 2, 10), resp("b", "", 1, 8)}, 50, true, 2},
		{"contacts of one customer are respondents", []Response{resp("a", "x", 1, 10), resp("a", "y", 1, 0), resp("a", "z", 1, 9)}, 33, true, 3},
		{"12.5 rounds to 13", append(repeat(resp("a", "", 1, 10), 1, "p"), repeat(resp("b", "", 1, 8), 7, "q")...), 13, true, 8},
		{"-12.5 rounds to -13", append(repeat(resp("a", "", 1, 0), 1, "p"), repeat(resp("b", "", 1, 8), 7, "q")...), -13, true, 8},
		{"-1/3 rounds to -33", []Response{resp("a", "", 1, 0), resp("b", "", 1, 7), resp("c", "", 1, 8)}, -33, true, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := NPS(c.rs)
			if got.OK != c.wantOK || got.Value != c.want || got.Respondents != c.n {
				t.Fatalf("NPS = %+v, want %d ok=%v n=%d", got, c.want, c.wantOK, c.n)
			}
		})
	}
}

func repeat(r Response, n int, prefix string) []Response {
	out := make([]Response, n)
	for i := range out {
		out[i] = r
		out[i].CustomerID = fmt.Sprint(prefix, i)
	}
	return out
}

func TestRulesVersion(t *testing.T) {
	t.Parallel()
	if DefaultRules().Version() != RulesVersion {
		t.Fatal("defaults must carry RulesVersion")
	}
	r := DefaultRules()
	r.LoyalOrders = 4
	if v := r.Version(); v == RulesVersion || !strings.HasPrefix(v, RulesVersion+"+") {
		t.Fatalf("custom version %q", v)
	}
	if _, err := NewRulebook(Rules{}); err == nil {
		t.Fatal("zero rules accepted")
	}
	// A custom threshold changes the outcome and the recorded version.
	rb, err := NewRulebook(r)
	if err != nil {
		t.Fatal(err)
	}
	b := &builder{}
	s := NewState("c")
	rb.Apply(s, day(10), b.placed("o1", "A", day(0)), b.placed("o2", "B", day(1)), b.placed("o3", "C", day(2)))
	if s.Stage() != StageNewCustomer || s.History[1].RulesVersion != r.Version() {
		t.Fatalf("4-order rules: %s %q", s.Stage(), s.History[1].RulesVersion)
	}
}

// randomEvents makes a messy customer: few order ids so placements,
// duplicates and cancellations collide; times spread over three years with
// some equal times so the sequence tie-break matters.
func randomEvents(r *rand.Rand, n int) []Event {
	b := &builder{}
	evs := make([]Event, 0, n)
	for i := 0; i < n; i++ {
		at := day(float64(r.IntN(3 * 365))).Add(time.Duration(r.IntN(3)) * time.Hour)
		id := fmt.Sprint("e", i)
		var e Event
		switch r.IntN(10) {
		case 0, 1:
			e = b.visit(id, at)
		case 2:
			e = b.quote(id, at)
		case 3, 4, 5:
			e = b.placed(id, fmt.Sprint("o", r.IntN(8)), at)
		case 6:
			e = b.cancelled(id, fmt.Sprint("o", r.IntN(8)), at)
		case 7:
			e = b.survey(id, r.IntN(11), at)
		case 8:
			st := StatusOpened
			if r.IntN(2) == 0 {
				st = StatusResolved
			}
			e = b.complaint(id, fmt.Sprint("k", r.IntN(3)), st, at)
		case 9:
			if r.IntN(4) == 0 {
				e = b.offboard(id, at)
			} else {
				e = b.visit(id, at)
			}
		}
		evs = append(evs, e)
	}
	return evs
}

func TestPropertyArrivalOrderDoesNotMatter(t *testing.T) {
	t.Parallel()
	rb := rulebook(t)
	r := rand.New(rand.NewPCG(1, 2))
	now := day(3 * 365)
	for iter := 0; iter < 400; iter++ {
		evs := randomEvents(r, 1+r.IntN(40))
		ref := NewState("c")
		rb.Apply(ref, now, evs...) // sorted inside: the in-order fold
		full := NewState("c")
		rb.Apply(full, now, evs...)
		rb.Rederive(full, now)
		assertSame(t, ref, full)
		for p := 0; p < 5; p++ {
			perm := append([]Event(nil), evs...)
			r.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
			// Duplicate some events: redeliveries must not matter either.
			for d := r.IntN(3); d > 0; d-- {
				perm = append(perm, perm[r.IntN(len(perm))])
			}
			s := NewState("c")
			for i := 0; i < len(perm); {
				k := 1 + r.IntN(4) // applied in random chunks, like coalesced batches
				rb.Apply(s, now, perm[i:min(i+k, len(perm))]...)
				i += k
			}
			assertSame(t, ref, s)
		}
	}
}

// TestPropertyNowMovesForward checks that applying events while the clock
// runs (the tail appears and disappears) ends where a single apply ends.
func TestPropertyNowMovesForward(t *testing.T) {
	t.Parallel()
	rb := rulebook(t)
	r := rand.New(rand.NewPCG(3, 4))
	for iter := 0; iter < 300; iter++ {
		evs := randomEvents(r, 1+r.IntN(30))
		final := day(4 * 365)
		ref := NewState("c")
		rb.Apply(ref, final, evs...)
		s := NewState("c")
		r.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
		check := func(old []Transition, ch Change) {
			t.Helper()
			if ch.OldHistoryLen != len(old) {
				t.Fatalf("OldHistoryLen %d, was %d", ch.OldHistoryLen, len(old))
			}
			if ch.HistoryFrom == -1 {
				if !reflect.DeepEqual(render(old), render(s.History)) {
					t.Fatalf("history changed but HistoryFrom = -1:\n%q\n%q", render(old), render(s.History))
				}
				return
			}
			if !reflect.DeepEqual(render(old[:min(ch.HistoryFrom, len(old))]), render(s.History[:ch.HistoryFrom])) {
				t.Fatalf("prefix before HistoryFrom %d changed", ch.HistoryFrom)
			}
			if ch.From != Stage(firstNonEmpty(old)) || ch.To != s.Stage() {
				t.Fatalf("From/To %s/%s", ch.From, ch.To)
			}
		}
		for i, e := range evs {
			old := append([]Transition(nil), s.History...)
			check(old, rb.Apply(s, day(float64(i*1100/len(evs))), e))
			if r.IntN(3) == 0 {
				old := append([]Transition(nil), s.History...)
				check(old, rb.Advance(s, day(float64(r.IntN(1100)))))
			}
		}
		rb.Advance(s, final)
		assertSame(t, ref, s)
	}
}

func TestStateJSONRoundTrip(t *testing.T) {
	t.Parallel()
	rb := rulebook(t)
	r := rand.New(rand.NewPCG(5, 6))
	evs := randomEvents(r, 60)
	s := NewState("c")
	rb.Apply(s, day(1000), evs[:30]...)
	raw, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back State
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	rb.Apply(&back, day(1000), evs[30:]...)
	rb.Apply(s, day(1000), evs[30:]...)
	assertSame(t, s, &back)
}

func firstNonEmpty(h []Transition) string {
	if len(h) == 0 {
		return string(StageNone)
	}
	return string(h[len(h)-1].To)
}
