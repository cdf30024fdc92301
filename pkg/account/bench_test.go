package account

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/klantreis/journey/pkg/journey"
)

// benchAccounts is a B2B mix for n accounts of 2-5 contacts over two
// years, in time order: visits dominate, quotes are sent and closed, the
// buyer orders, some answer surveys or complain, as the simulator's B2B
// accounts do.
func benchAccounts(n int) ([]Event, []int) {
	r := rand.New(rand.NewPCG(11, 12))
	roles := Roles()
	var evs []Event
	var who []int
	for a := 0; a < n; a++ {
		acct := fmt.Sprint("acct-", a)
		contacts := 2 + r.IntN(4)
		start := r.IntN(365)
		k := 10 + r.IntN(40)
		for i := 0; i < k; i++ {
			c := r.IntN(contacts)
			w := who0{fmt.Sprint("cust-", a), fmt.Sprint("p", c), acct, roles[c]}
			at := day(float64(start + r.IntN(365)))
			id := fmt.Sprint(acct, "-e", i)
			var e Event
			switch x := r.IntN(20); {
			case x < 10:
				e = visit(w.who(), id, at)
			case x < 12:
				e = quote(w.who(), id, fmt.Sprint("q", i/4), []string{QuoteSent, QuoteAccepted, QuoteRejected}[r.IntN(3)], at)
			case x < 16:
				e = placed(w.who(), id, fmt.Sprint("o", i), at)
			case x < 18:
				e = survey(w.who(), id, r.IntN(11), at)
			default:
				e = complaint(w.who(), id, fmt.Sprint("k", r.IntN(2)), []string{journey.StatusOpened, journey.StatusResolved}[r.IntN(2)], at)
			}
			evs = append(evs, e)
			who = append(who, a)
		}
	}
	idx := make([]int, len(evs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(i, j int) int { return evs[i].Time.Compare(evs[j].Time) })
	outE, outW := make([]Event, len(evs)), make([]int, len(evs))
	for i, j := range idx {
		outE[i], outW[i] = evs[j], who[j]
	}
	return outE, outW
}

type who0 struct{ customer, contact, account, role string }

func (w who0) who() who { return who{w.customer, w.contact, w.account, w.role} }

// BenchmarkAccountApply measures account rule application alone: one event
// at a time to its account's state, in time order, as the projector applies
// them (events/s per core).
func BenchmarkAccountApply(b *testing.B) {
	rb := rulebook(b)
	const accounts = 2000
	evs, acct := benchAccounts(accounts)
	now := day(800)
	b.ReportAllocs()
	b.ResetTimer()
	applied := 0
	for applied < b.N {
		b.StopTimer()
		states := make([]*State, accounts)
		for i := range states {
			states[i] = NewState(fmt.Sprint("acct-", i))
		}
		b.StartTimer()
		for i := range evs {
			rb.Apply(states[acct[i]], now, evs[i:i+1], nil)
			applied++
			if applied == b.N {
				break
			}
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
