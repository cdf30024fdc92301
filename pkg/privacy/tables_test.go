package privacy

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/klantreis/journey/pkg/account"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/suppression"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		table Table
		erase bool
		err   bool
	}{
		{Table{Name: "events", Engine: "MergeTree"}, true, false},
		{Table{Name: "events_local", Engine: "ReplicatedMergeTree"}, true, false},
		{Table{Name: "events__rebuild", Engine: "MergeTree"}, true, false},
		{Table{Name: "events__v2", Engine: "MergeTree"}, true, false},
		{Table{Name: "customer_state__old", Engine: "ReplacingMergeTree"}, true, false},
		{Table{Name: "events_dead", Engine: "MergeTree", Columns: []string{"subject", "headers"}}, true, false},
		{Table{Name: "events", Engine: "Distributed"}, false, false},
		{Table{Name: "nps_daily", Engine: "View"}, false, false},
		{Table{Name: "event_ids_mv", Engine: "MaterializedView"}, false, false},
		{Table{Name: "schema_migrations", Engine: "MergeTree"}, false, false},
		{Table{Name: "ops_audit", Engine: "MergeTree"}, false, false},
		{Table{Name: "loyalty_points", Engine: "MergeTree", Columns: []string{"customer_id", "points"}}, true, false},
		{Table{Name: ".inner.daily", Engine: "SummingMergeTree", Columns: []string{"day", "customer_id"}}, true, false},
		{Table{Name: "notes", Engine: "MergeTree", Columns: []string{"note"}}, false, true},
		{Table{Name: "notes__rebuild", Engine: "MergeTree", Columns: []string{"note"}}, false, true},
	} {
		c, err := Classify(tc.table)
		if tc.err {
			if !errors.Is(err, ErrUncovered) || !strings.Contains(err.Error(), tc.table.Name) {
				t.Errorf("%s: %v, want ErrUncovered naming it", tc.table.Name, err)
			}
			continue
		}
		if err != nil || c.Erase != tc.erase || (c.Erase && c.Where == nil) || (!c.Erase && c.Reason == "") {
			t.Errorf("%s (%s): %+v %v, want erase=%v", tc.table.Name, tc.table.Engine, c, err, tc.erase)
		}
	}
}

func TestDeadRowsAreFoundBySubjectHeaderOrBody(t *testing.T) {
	where, args := bySubjectOrHeader([]string{"acme.nl/42"})
	if !strings.Contains(where, "splitByChar") || len(args) != 4 {
		t.Fatalf("%s %v", where, args)
	}
	if got := args[1].(clickhouse.GroupSet).Value[0]; got != `["acme.nl/42"]` {
		t.Errorf("header value %q", got)
	}
	if k := args[0].(clickhouse.GroupSet).Value[0]; k != stream.CustomerKey("acme.nl/42") || !strings.Contains(k.(string), "_2E") {
		t.Errorf("key %v", k)
	}
}

func TestUncoveredNamesStraysOnly(t *testing.T) {
	erased, kept := StreamInventory(Names{})
	live := append(append([]string{}, erased...), "STRAY")
	for k := range kept {
		live = append(live, k)
	}
	got := Uncovered(live, []Table{{Name: "events", Engine: "MergeTree"}, {Name: "x", Engine: "Log"}}, Names{})
	if strings.Join(got, ",") != "stream STRAY,table x" {
		t.Errorf("uncovered %v", got)
	}
}

// An account keeps an erased customer's orders under account.Pseudonym:
// it must be the hash the suppression list keeps, so that no new
// pseudonym of the customer appears anywhere.
func TestAccountPseudonymIsTheSuppressionHash(t *testing.T) {
	for _, id := range []string{"c1", "ünï.cödé", ""} {
		if account.Pseudonym(id) != suppression.Hash(id) {
			t.Fatalf("%q: pseudonym %s, suppression hash %s", id, account.Pseudonym(id), suppression.Hash(id))
		}
	}
}

func TestBatchesBoundCountAndBytes(t *testing.T) {
	short := make([]string, 4500)
	for i := range short {
		short[i] = fmt.Sprint("c", i)
	}
	long := make([]string, 100)
	for i := range long {
		long[i] = strings.Repeat("x", 1000)
	}
	for _, c := range []struct {
		name string
		in   []string
		want []int
	}{
		{"none", nil, nil},
		{"one", []string{"a"}, []int{1}},
		{"by count", short, []int{2000, 2000, 500}},
		{"by bytes", long, []int{16, 16, 16, 16, 16, 16, 4}},
		{"one id longer than a batch", []string{strings.Repeat("y", 20000), "b"}, []int{1, 1}},
	} {
		var got []int
		n := 0
		for _, b := range batches(c.in) {
			got = append(got, len(b))
			n += len(b)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) || n != len(c.in) {
			t.Errorf("%s: batches of %v, want %v", c.name, got, c.want)
		}
	}
}
