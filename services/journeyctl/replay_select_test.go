package journeyctl_test

import (
	"slices"
	"testing"
	"time"

	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/services/journeyctl"
)

// The subject filters narrow the read to the selected kinds and customers
// (escaped as subject keys); a selection of too many pairs reads the kinds.
func TestSelectionFilters(t *testing.T) {
	many := make([]string, 300)
	for i := range many {
		many[i] = "c" + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	for _, tc := range []struct {
		name string
		sel  journeyctl.Selection
		want []string
	}{
		{"everything", journeyctl.Selection{}, []string{"touchpoint.*.*.*"}},
		{"time and source only", journeyctl.Selection{Source: "shop", From: day0}, []string{"touchpoint.*.*.*"}},
		{"kinds", journeyctl.Selection{Kinds: []string{"order", "visit"}}, []string{"touchpoint.*.order.*", "touchpoint.*.visit.*"}},
		{"customers", journeyctl.Selection{Customers: []string{"acme.nl/1", "b-2"}}, []string{"touchpoint.*.*.acme_2Enl_2F1", "touchpoint.*.*.b-2"}},
		{"customers x kinds", journeyctl.Selection{Customers: []string{"a b"}, Kinds: []string{"order", "survey"}},
			[]string{"touchpoint.*.order.a_20b", "touchpoint.*.survey.a_20b"}},
		{"too many pairs", journeyctl.Selection{Customers: many, Kinds: []string{"order"}}, []string{"touchpoint.*.order.*"}},
	} {
		if got := tc.sel.Filters(); !slices.Equal(got, tc.want) {
			t.Errorf("%s: filters %v, want %v", tc.name, got, tc.want)
		}
	}
}

// Match applies every criterion; the time ranges are half-open.
func TestSelectionMatch(t *testing.T) {
	ev := func(source, customer string, k touchpoint.Kind, at time.Time) *touchpoint.Event {
		return &touchpoint.Event{Source: source, ID: "x", Subject: customer, Type: touchpoint.TypeOf(k), Time: at}
	}
	noon := day0.Add(12 * time.Hour)
	sel := journeyctl.Selection{From: day0, To: noon, Customers: []string{"a", "b"}, Kinds: []string{"order"}, Source: "shop"}
	for _, tc := range []struct {
		name string
		e    *touchpoint.Event
		want bool
	}{
		{"all match, at from", ev("shop", "a", touchpoint.KindOrder, day0), true},
		{"just before to", ev("shop", "b", touchpoint.KindOrder, noon.Add(-time.Nanosecond)), true},
		{"at to", ev("shop", "a", touchpoint.KindOrder, noon), false},
		{"before from", ev("shop", "a", touchpoint.KindOrder, day0.Add(-time.Second)), false},
		{"other customer", ev("shop", "c", touchpoint.KindOrder, day0), false},
		{"other kind", ev("shop", "a", touchpoint.KindVisit, day0), false},
		{"other source", ev("crm", "a", touchpoint.KindOrder, day0), false},
	} {
		if got := sel.Match(tc.e); got != tc.want {
			t.Errorf("%s: match %v, want %v", tc.name, got, tc.want)
		}
	}
	if !(journeyctl.Selection{}).Match(ev("any", "any", touchpoint.KindSurvey, time.Time{})) {
		t.Error("the empty selection must match everything")
	}
	st := journeyctl.Selection{Since: day0, Until: noon}
	if !st.StreamTimeOK(day0) || st.StreamTimeOK(noon) || st.StreamTimeOK(day0.Add(-time.Second)) {
		t.Error("stream time range is not [since, until)")
	}
}
