package journeyctl

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
)

// Selection is the slice of TOUCHPOINTS a replay reads. Zero fields select
// everything. Time ranges are half-open: [From, To) on the CloudEvents
// time, [Since, Until) on the time JetStream stored the message.
type Selection struct {
	From      time.Time `json:"from,omitzero"`
	To        time.Time `json:"to,omitzero"`
	Since     time.Time `json:"since,omitzero"`
	Until     time.Time `json:"until,omitzero"`
	Customers []string  `json:"customers,omitempty"`
	Kinds     []string  `json:"kinds,omitempty"`
	Source    string    `json:"source,omitempty"`
}

// normalize validates the selection and puts it in a canonical form
// (sorted, deduplicated, UTC), so that the same selection given in another
// order is the same replay.
func (s *Selection) normalize() error {
	for _, k := range s.Kinds {
		if !slices.Contains(touchpoint.FactKinds(), touchpoint.Kind(k)) {
			return usagef("--kind %q is not a touchpoint kind (one of %s)", k, kindList())
		}
	}
	for _, c := range s.Customers {
		if c == "" {
			return usagef("--customer must not be empty")
		}
	}
	s.Kinds = sortedSet(s.Kinds)
	s.Customers = sortedSet(s.Customers)
	for _, t := range []*time.Time{&s.From, &s.To, &s.Since, &s.Until} {
		if !t.IsZero() {
			*t = t.UTC()
		}
	}
	if !s.From.IsZero() && !s.To.IsZero() && !s.From.Before(s.To) {
		return usagef("--from (%s) must be before --to (%s)", s.From.Format(time.RFC3339), s.To.Format(time.RFC3339))
	}
	if !s.Since.IsZero() && !s.Until.IsZero() && !s.Since.Before(s.Until) {
		return usagef("--since (%s) must be before --until (%s)", s.Since.Format(time.RFC3339), s.Until.Format(time.RFC3339))
	}
	return nil
}

func kindList() string {
	var ks []string
	for _, k := range touchpoint.FactKinds() {
		ks = append(ks, string(k))
	}
	return strings.Join(ks, ", ")
}

func sortedSet(v []string) []string {
	if len(v) == 0 {
		return nil
	}
	out := slices.Clone(v)
	slices.Sort(out)
	return slices.Compact(out)
}

// maxFilters bounds the subject filters of one consumer: beyond it the
// replay reads the kinds' (or all) subjects and filters customers itself.
const maxFilters = 256

// Filters are the consumer's subject filters: the server then delivers
// only the selected customers' and kinds' messages (stored subjects are
// touchpoint.<partition>.<kind>.<customer-key>).
func (s Selection) Filters() []string {
	kinds := s.Kinds
	if len(kinds) == 0 {
		kinds = []string{"*"}
	}
	keys := make([]string, 0, len(s.Customers))
	for _, c := range s.Customers {
		keys = append(keys, stream.CustomerKey(c))
	}
	if len(keys) == 0 || len(keys)*len(kinds) > maxFilters {
		keys = []string{"*"}
	}
	if len(keys) == 1 && keys[0] == "*" && len(kinds) == 1 && kinds[0] == "*" {
		return []string{stream.AllFactsFilter}
	}
	out := make([]string, 0, len(keys)*len(kinds))
	for _, k := range kinds {
		for _, key := range keys {
			out = append(out, "touchpoint.*."+k+"."+key)
		}
	}
	return out
}

// StreamTimeOK reports whether a message stored at ts is in [Since, Until).
func (s Selection) StreamTimeOK(ts time.Time) bool {
	return (s.Since.IsZero() || !ts.Before(s.Since)) && (s.Until.IsZero() || ts.Before(s.Until))
}

// Match reports whether a decoded event is selected. The subject filters
// already narrowed by kind and customer key; Match checks them again (a
// selection with too many filters reads wider) and the event time and source.
func (s Selection) Match(e *touchpoint.Event) bool {
	if len(s.Kinds) > 0 && !slices.Contains(s.Kinds, string(e.Kind())) {
		return false
	}
	if len(s.Customers) > 0 && !slices.Contains(s.Customers, e.Subject) {
		return false
	}
	if s.Source != "" && e.Source != s.Source {
		return false
	}
	if !s.From.IsZero() && e.Time.Before(s.From) {
		return false
	}
	if !s.To.IsZero() && !e.Time.Before(s.To) {
		return false
	}
	return true
}

// Map is the selection as the audit records it.
func (s Selection) Map() map[string]any {
	b, _ := json.Marshal(s)
	m := map[string]any{}
	_ = json.Unmarshal(b, &m)
	return m
}

// replayID is the default id of a replay: a hash of its selection and
// target, so that running the same command again continues it.
func replayID(s Selection, target string) string {
	b, _ := json.Marshal(struct {
		S Selection `json:"s"`
		T string    `json:"t"`
	}{s, target})
	sum := sha256.Sum256(b)
	return "r-" + hex.EncodeToString(sum[:6])
}

// replayMsgID is the Nats-Msg-Id of a replayed copy: one per (replay,
// event), so a resumed replay's repeats inside the duplicate window are
// dropped by the broker, while another replay of the same events is not.
func replayMsgID(id, source, eventID string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s", id, source, eventID)
	return hex.EncodeToString(h.Sum(nil)[:16])
}
