package touchpoint

// names remembers the attribute names an event has given, so that one
// given twice is refused. JSON readers and header maps disagree on which of
// two values wins (fastjson visits both, encoding/json keeps the last,
// ClickHouse's visitParam functions read the first, and a Go map of headers
// is iterated in random order), so an event that names an attribute twice
// means different things to different readers. Nothing accepted may be
// silently changed, so such an event is not accepted.
//
// The zero value is ready; up to 16 names need no allocation, which covers
// every real event, and more fall back to a map so that a hostile event
// with thousands of names costs linear time.
type names struct {
	few  [16]string
	n    int
	many map[string]struct{}
}

// add records name and reports whether it was given before.
func (s *names) add(name string) (dup bool) {
	if s.many != nil {
		_, dup = s.many[name]
		s.many[name] = struct{}{}
		return dup
	}
	for _, x := range s.few[:s.n] {
		if x == name {
			return true
		}
	}
	if s.n < len(s.few) {
		s.few[s.n] = name
		s.n++
		return false
	}
	s.many = make(map[string]struct{}, 2*len(s.few))
	for _, x := range s.few {
		s.many[x] = struct{}{}
	}
	s.many[name] = struct{}{}
	return false
}

// twice is the error message for a name given more than once.
const twice = "is given more than once; each attribute and property may appear once, because readers disagree on which value counts"
