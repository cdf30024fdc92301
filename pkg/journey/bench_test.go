package journey

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// benchStream is a realistic mix for n customers over two years, in time
// order: visits dominate, some quote and order (a few repeatedly), some
// answer surveys or complain.
func benchStream(n int) ([]Event, []int) {
	r := rand.New(rand.NewPCG(7, 8))
	b := &builder{}
	var evs []Event
	var who []int
	for c := 0; c < n; c++ {
		start := r.IntN(365)
		k := 3 + r.IntN(15)
		for i := 0; i < k; i++ {
			at := day(float64(start + r.IntN(365)))
			id := fmt.Sprint("c", c, "e", i)
			var e Event
			switch x := r.IntN(20); {
			case x < 11:
				e = b.visit(id, at)
			case x < 13:
				e = b.quote(id, at)
			case x < 17:
				e = b.placed(id, fmt.Sprint("o", i), at)
			case x < 18:
				e = b.cancelled(id, fmt.Sprint("o", r.IntN(i+1)), at)
			case x < 19:
				e = b.survey(id, r.IntN(11), at)
			default:
				e = b.complaint(id, fmt.Sprint("k", r.IntN(2)), StatusOpened, at)
			}
			evs = append(evs, e)
			who = append(who, c)
		}
	}
	idx := make([]int, len(evs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(i, j int) int { return evs[i].Time.Compare(evs[j].Time) })
	outE := make([]Event, len(evs))
	outW := make([]int, len(evs))
	for i, j := range idx {
		outE[i], outW[i] = evs[j], who[j]
		outE[i].Seq = uint64(i + 1)
	}
	return outE, outW
}

// BenchmarkApply measures rule application alone: one event at a time to
// its customer's state, as the projector applies them (events/s per core).
func BenchmarkApply(b *testing.B) {
	rb := rulebook(b)
	evs, who := benchStream(10000)
	now := day(800)
	b.ReportAllocs()
	b.ResetTimer()
	applied := 0
	for applied < b.N {
		b.StopTimer()
		states := make([]*State, 10000)
		for i := range states {
			states[i] = NewState(fmt.Sprint("c", i))
		}
		b.StartTimer()
		for i := range evs {
			rb.Apply(states[who[i]], now, evs[i])
			applied++
			if applied == b.N {
				break
			}
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkApplyLate measures the re-fold a late event costs on a customer
// with a long history.
func BenchmarkApplyLate(b *testing.B) {
	rb := rulebook(b)
	r := rand.New(rand.NewPCG(9, 10))
	evs := randomEvents(r, 200)
	base := NewState("c")
	rb.Apply(base, day(2000), evs...)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rb.Rederive(base, day(2000))
	}
	_ = time.Second
}
