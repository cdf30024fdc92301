package projection

import (
	"container/heap"
	"time"
)

// schedule is the in-memory sweep index of one partition: the authoritative
// expiry per customer in a map, and a min-heap by time with lazy deletion
// (an entry whose time no longer matches the map is skipped when popped),
// so a sweep touches only the customers that are due.
type schedule struct {
	at map[string]time.Time
	h  entries
}

type entry struct {
	at time.Time
	id string
}

type entries []entry

func (h entries) Len() int           { return len(h) }
func (h entries) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h entries) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *entries) Push(x any)        { *h = append(*h, x.(entry)) }
func (h *entries) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

func newSchedule() *schedule { return &schedule{at: make(map[string]time.Time)} }

// set records a customer's expiry; zero removes it.
func (s *schedule) set(id string, at time.Time) {
	if at.IsZero() {
		delete(s.at, id)
		return
	}
	if cur, ok := s.at[id]; ok && cur.Equal(at) {
		return
	}
	s.at[id] = at
	heap.Push(&s.h, entry{at: at, id: id})
	if len(s.h) > 2*len(s.at)+1024 {
		s.compact()
	}
}

// due pops up to limit customers whose expiry is at or before now. They
// stay in the map until their new expiry is set.
func (s *schedule) due(now time.Time, limit int) []string {
	var out []string
	for len(s.h) > 0 && !s.h[0].at.After(now) && len(out) < limit {
		e := heap.Pop(&s.h).(entry)
		if cur, ok := s.at[e.id]; ok && cur.Equal(e.at) {
			out = append(out, e.id)
		}
	}
	return out
}

// compact drops stale heap entries.
func (s *schedule) compact() {
	h := make(entries, 0, len(s.at))
	for id, at := range s.at {
		h = append(h, entry{at: at, id: id})
	}
	heap.Init(&h)
	s.h = h
}
