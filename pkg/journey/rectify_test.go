package journey

import (
	"strings"
	"testing"

	"github.com/klantreis/journey/pkg/touchpoint"
)

func rev(e Event, r uint32) Event { e.Revision = r; return e }

func TestCurrentKeepsTheHighestRevision(t *testing.T) {
	t.Parallel()
	var b builder
	v := b.visit("v", day(0))
	o := b.placed("x", "o1", day(1))
	q := rev(b.quote("x", day(1)), 1)
	q2 := rev(b.quote("x", day(2)), 2)
	cases := []struct {
		name string
		in   []Event
		want []Event
	}{
		{"empty", nil, []Event{}},
		{"no corrections", []Event{v, o}, []Event{v, o}},
		{"correction after original", []Event{v, o, q}, []Event{v, q}},
		{"correction before original", []Event{q, v, o}, []Event{q, v}},
		{"two corrections, any order", []Event{q2, o, q}, []Event{q2}},
		{"same revision twice: the later", []Event{o, rev(o, 0)}, []Event{o}},
	}
	for _, c := range cases {
		got := Current(c.in)
		if len(got) != len(c.want) {
			t.Fatalf("%s: %d events, want %d", c.name, len(got), len(c.want))
		}
		for i := range got {
			if got[i].ID != c.want[i].ID || got[i].Revision != c.want[i].Revision || got[i].Kind != c.want[i].Kind {
				t.Errorf("%s: [%d] = %s r%d %s, want %s r%d %s", c.name, i, got[i].ID, got[i].Revision, got[i].Kind,
					c.want[i].ID, c.want[i].Revision, c.want[i].Kind)
			}
		}
	}
}

// The rectification rule, table-driven: a history, then a correction (and
// what the log holds by then); the stage and history the rebuild gives.
func TestRebuildAfterACorrection(t *testing.T) {
	t.Parallel()
	rb := rulebook(t)
	now := day(30)
	var b builder
	v := b.visit("v", day(0))
	o1 := b.placed("o1", "o1", day(1))
	asQuote := rev(b.quote("o1", day(1)), 1)
	o2 := b.placed("o2", "o2", day(2))
	laterOrder := rev(b.placed("o1", "o1", day(3)), 1)
	s1 := b.survey("s1", 2, day(4))
	s1Fixed := rev(b.survey("s1", 9, day(4)), 1)
	cases := []struct {
		name        string
		before      []Event
		correction  Event
		wantStage   Stage
		wantReasons []Reason
		wantFrom    int // Change.HistoryFrom
		atRisk      [2]bool
	}{
		{"order corrected to a quote: back to prospect", []Event{v, o1}, asQuote, StageProspect,
			[]Reason{ReasonFirstTouchpoint}, 1, [2]bool{}},
		{"one of two orders corrected to a quote: still a customer, from the other", []Event{v, o1, o2}, asQuote, StageNewCustomer,
			[]Reason{ReasonFirstTouchpoint, ReasonFirstOrder}, 1, [2]bool{}},
		{"an order moved in time", []Event{v, o1}, laterOrder, StageNewCustomer,
			[]Reason{ReasonFirstTouchpoint, ReasonFirstOrder}, 1, [2]bool{}},
		{"a survey score corrected: no longer at risk", []Event{v, s1}, s1Fixed, StageProspect,
			[]Reason{ReasonFirstTouchpoint}, -1, [2]bool{true, false}},
	}
	for _, c := range cases {
		old := NewState("c")
		rb.Apply(old, now, c.before...)
		if !old.Corrects(&c.correction) {
			t.Fatalf("%s: the correction is not seen as one", c.name)
		}
		s, ch := rb.Rebuild(old, now, append(append([]Event{}, c.before...), c.correction))
		if s.Stage() != c.wantStage || ch.To != c.wantStage || ch.From != old.Stage() {
			t.Errorf("%s: stage %s (change %s -> %s), want %s", c.name, s.Stage(), ch.From, ch.To, c.wantStage)
		}
		var reasons []Reason
		for _, tr := range s.History {
			reasons = append(reasons, tr.Reason)
		}
		if len(reasons) != len(c.wantReasons) {
			t.Fatalf("%s: history %v, want %v", c.name, reasons, c.wantReasons)
		}
		for i := range reasons {
			if reasons[i] != c.wantReasons[i] {
				t.Errorf("%s: history %v, want %v", c.name, reasons, c.wantReasons)
			}
		}
		if c.name == "one of two orders corrected to a quote: still a customer, from the other" && s.History[1].Causes[0] != "o2" {
			t.Errorf("%s: the first order is now %v, want o2", c.name, s.History[1].Causes)
		}
		if ch.HistoryFrom != c.wantFrom || ch.OldHistoryLen != len(old.History) || !ch.Facts {
			t.Errorf("%s: HistoryFrom %d (old len %d), want %d", c.name, ch.HistoryFrom, ch.OldHistoryLen, c.wantFrom)
		}
		if ch.SatisfactionBefore.AtRisk != c.atRisk[0] || ch.SatisfactionAfter.AtRisk != c.atRisk[1] {
			t.Errorf("%s: at risk %v -> %v, want %v", c.name, ch.SatisfactionBefore.AtRisk, ch.SatisfactionAfter.AtRisk, c.atRisk)
		}
		// The superseded version arriving again (a redelivery, a replay)
		// is stale: it changes nothing.
		stale := c.before[len(c.before)-1]
		if stale.ID == c.correction.ID {
			if ch2 := rb.Apply(s, now, stale); ch2.Changed() || s.Stage() != c.wantStage {
				t.Errorf("%s: the stale original changed the state (stage %s)", c.name, s.Stage())
			}
		}
		// The same correction again is a duplicate.
		if s.Corrects(&c.correction) {
			t.Errorf("%s: the applied correction is still seen as new", c.name)
		}
	}
}

// Rebuilding from a history with no correction gives what applying it did:
// the rebuild is the fold, not a second set of rules.
func TestRebuildEqualsApply(t *testing.T) {
	t.Parallel()
	rb := rulebook(t)
	var b builder
	evs := []Event{b.visit("v", day(0)), b.placed("o1", "o1", day(1)), b.placed("o2", "o2", day(100)),
		b.placed("o3", "o3", day(200)), b.complaint("k", "k", StatusOpened, day(201)), b.cancelled("c2", "o2", day(250))}
	now := day(300)
	s := NewState("c")
	rb.Apply(s, now, evs...)
	r, ch := rb.Rebuild(s, now, evs)
	if ch.HistoryFrom != -1 || r.Stage() != s.Stage() || len(r.History) != len(s.History) {
		t.Fatalf("rebuild %s (%d transitions, from %d), apply %s (%d)", r.Stage(), len(r.History), ch.HistoryFrom, s.Stage(), len(s.History))
	}
}

func TestConsentLatestAnswerWins(t *testing.T) {
	t.Parallel()
	var b builder
	with := func(e Event, answers ...touchpoint.ConsentAnswer) Event { e.Consent = answers; return e }
	grant := touchpoint.ConsentAnswer{Purpose: touchpoint.PurposeMarketing, Granted: true}
	withdraw := touchpoint.ConsentAnswer{Purpose: touchpoint.PurposeMarketing, Granted: false}
	analytics := touchpoint.ConsentAnswer{Purpose: touchpoint.PurposeAnalytics, Granted: true}
	g := with(b.visit("g", day(1)), grant, analytics)
	w := with(b.visit("w", day(2)), withdraw)
	g2 := with(b.visit("g2", day(3)), grant)
	plain := b.visit("p", day(4))
	cases := []struct {
		name                string
		events              []Event
		marketing, analytic bool
	}{
		{"no answer is no consent", []Event{plain}, false, false},
		{"granted", []Event{g}, true, true},
		{"withdrawn after the grant", []Event{g, w}, false, true},
		{"withdrawal arriving before the older grant", []Event{w, g}, false, true},
		{"granted again", []Event{g, w, g2}, true, true},
		{"a touchpoint without consent changes nothing", []Event{g, w, plain}, false, true},
	}
	rb := rulebook(t)
	for _, c := range cases {
		// Every order of arrival, one by one and all at once, agrees.
		for _, split := range []bool{false, true} {
			s := NewState("c")
			if split {
				for i := range c.events {
					rb.Apply(s, day(10), c.events[i])
				}
			} else {
				rb.Apply(s, day(10), c.events...)
			}
			if s.Consents(touchpoint.PurposeMarketing) != c.marketing || s.Consents(touchpoint.PurposeAnalytics) != c.analytic {
				t.Errorf("%s (split %v): marketing %v analytics %v, want %v %v", c.name, split,
					s.Consents(touchpoint.PurposeMarketing), s.Consents(touchpoint.PurposeAnalytics), c.marketing, c.analytic)
			}
			if s.MayEmit(touchpoint.KindAtRisk) != c.marketing || !s.MayEmit(touchpoint.KindStageChanged) || !s.MayEmit(touchpoint.KindSatisfactionChanged) {
				t.Errorf("%s: MayEmit at_risk %v, want %v; stage/satisfaction changes always", c.name, s.MayEmit(touchpoint.KindAtRisk), c.marketing)
			}
		}
	}
}

func TestParseConsent(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want []touchpoint.ConsentAnswer
		err  string
	}{
		{"marketing:granted", []touchpoint.ConsentAnswer{{Purpose: touchpoint.PurposeMarketing, Granted: true}}, ""},
		{"marketing:withdrawn,analytics:granted", []touchpoint.ConsentAnswer{{Purpose: touchpoint.PurposeMarketing}, {Purpose: touchpoint.PurposeAnalytics, Granted: true}}, ""},
		{"", nil, "is empty"},
		{"marketing", nil, "not purpose:answer"},
		{"sales:granted", nil, `purpose "sales" is unknown`},
		{"marketing:yes", nil, `answer "yes" for marketing is unknown`},
		{"marketing:granted,marketing:withdrawn", nil, "given twice"},
	}
	for _, c := range cases {
		got, err := touchpoint.ParseConsent(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || len(got) != len(c.want) {
			t.Fatalf("%q: %v %v", c.in, got, err)
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%q: %v, want %v", c.in, got, c.want)
			}
		}
	}
}
