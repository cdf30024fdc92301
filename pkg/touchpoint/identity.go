package touchpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strconv"
	"unicode"

	"github.com/cespare/xxhash/v2"
)

// An event is its (source, id): that pair, and nothing about how or how
// often it was delivered, decides whether two messages carry the same
// event. The functions here are the one definition every consumer uses.

// ExtRevision is the extension attribute that marks a correction: the same
// (source, id) with a higher revision supersedes what was stored (GDPR
// rectification). Absent means revision 0, the original.
const ExtRevision = "revision"

// MaxRevision bounds the revision attribute (it is stored as UInt32).
const MaxRevision = 1<<32 - 1

// IdentityHash is the 64-bit key of (source, id) in the identity index.
// The NUL separator keeps ("a", "bc") and ("ab", "c") apart: neither
// attribute may contain NUL (see [Validate]).
func IdentityHash(source, id string) uint64 {
	d := xxhash.New()
	_, _ = d.WriteString(source)
	_, _ = d.Write([]byte{0})
	_, _ = d.WriteString(id)
	return d.Sum64()
}

// ContentHash fingerprints what an event says: its type, subject (the
// customer), time to the millisecond and data, with insignificant JSON
// white space removed. Extensions are left out on purpose: a trace
// context, a replay or redrive marker and the revision itself differ
// between deliveries of one and the same event.
func ContentHash(e *Event) uint64 {
	d := xxhash.New()
	var n [8]byte
	put := func(s string) {
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		_, _ = d.Write(n[:])
		_, _ = d.WriteString(s)
	}
	put(e.Type)
	put(e.Subject)
	binary.LittleEndian.PutUint64(n[:], uint64(e.Time.UnixMilli()))
	_, _ = d.Write(n[:])
	data := e.Data
	// Most producers send compact JSON: compacting only what has white
	// space somewhere (inside a string too, which Compact keeps) saves a
	// copy per event.
	if bytes.ContainsAny(data, " \t\r\n") {
		var buf bytes.Buffer
		if json.Compact(&buf, data) == nil {
			data = buf.Bytes()
		}
	}
	binary.LittleEndian.PutUint64(n[:], uint64(len(data)))
	_, _ = d.Write(n[:])
	_, _ = d.Write(data)
	return d.Sum64()
}

// Revision returns the event's revision (0 without the attribute) and
// whether the attribute, when present, is a valid one.
func Revision(e *Event) (uint32, bool) {
	v, ok := e.Extensions[ExtRevision]
	if !ok {
		return 0, true
	}
	r, err := strconv.ParseUint(v, 10, 32)
	if err != nil || strconv.FormatUint(r, 10) != v {
		return 0, false
	}
	return uint32(r), true
}

// Version is what a store knows of one (source, id): the highest revision
// it holds and the content at that revision.
type Version struct {
	Revision uint32
	Content  uint64
}

// Verdict says what to do with an arriving event given what is stored.
type Verdict int

const (
	// Store: the event is new, or a correction (a higher revision).
	Store Verdict = iota
	// Duplicate: the same revision with the same content is stored
	// already; acknowledge it and store nothing.
	Duplicate
	// Stale: a higher revision is stored; this one is superseded.
	Stale
	// Conflict: the same revision is stored with other content. Storing it
	// would change an accepted event silently, dropping it would lose it:
	// it goes to the dead letters, and a correction (revision+1) is the
	// way to change the event.
	Conflict
)

func (v Verdict) String() string {
	switch v {
	case Store:
		return "store"
	case Duplicate:
		return "duplicate"
	case Stale:
		return "stale"
	case Conflict:
		return "conflict"
	}
	return "verdict(" + strconv.Itoa(int(v)) + ")"
}

// Judge decides about an arriving event of version in against the stored
// version (stored is false when nothing is stored). It is the eventhorizon
// rule with one addition: an event at or below the applied version is a
// no-op, unless it claims the same version with different content.
func Judge(stored Version, have bool, in Version) Verdict {
	switch {
	case !have || in.Revision > stored.Revision:
		return Store
	case in.Revision < stored.Revision:
		return Stale
	case in.Content == stored.Content:
		return Duplicate
	default:
		return Conflict
	}
}

// ControlChar reports the first control character in s (C0, DEL or C1,
// as unicode.IsControl) and its byte offset. Identifiers (id, source and
// the customer id in subject) may hold none: NATS headers cannot carry
// a line break (it arrived as a space), ClickHouse and the API would
// show what the subject key does not say, and two ids that differ only
// in one would look alike everywhere. Every path applies the same rule:
// the collector and pkg/publish through [Validate], the consumers on the
// NATS path through [Validate] as well, the API through this function.
func ControlChar(s string) (r rune, at int, found bool) {
	for i, r := range s {
		if unicode.IsControl(r) {
			return r, i, true
		}
	}
	return 0, 0, false
}
