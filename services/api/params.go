package api

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
)

// maxIDLen matches the touchpoint contract's bound on the subject.
const maxIDLen = 128

// checkParams rejects query parameters the endpoint does not know and
// repeated ones, so a typo is an error rather than a silently ignored filter.
func checkParams(q url.Values, allowed ...string) error {
	var bad []InvalidParam
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		ok := false
		for _, a := range allowed {
			if k == a {
				ok = true
				break
			}
		}
		switch {
		case !ok:
			bad = append(bad, InvalidParam{Name: k, Reason: "unknown parameter; allowed: " + strings.Join(allowed, ", ")})
		case len(q[k]) > 1:
			bad = append(bad, InvalidParam{Name: k, Reason: "given more than once"})
		}
	}
	if len(bad) > 0 {
		return &paramError{params: bad}
	}
	return nil
}

// validID accepts what can be a customer or account id: 1..128 bytes of
// valid UTF-8 without control characters. Quotes, backslashes, ?, $ and
// braces are fine: values are bound, never spliced into SQL.
func validID(name, s string) error {
	switch {
	case s == "":
		return badParam(name, "must not be empty")
	case len(s) > maxIDLen:
		return badParam(name, "longer than 128 bytes")
	case !utf8.ValidString(s):
		return badParam(name, "not valid UTF-8")
	}
	if r, at, ok := touchpoint.ControlChar(s); ok {
		// The ingest rule: no such id is ever stored.
		return badParam(name, fmt.Sprintf("contains the control character U+%04X at byte %d", r, at))
	}
	return nil
}

func parseLimit(q url.Values, def, max int) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, badParam("limit", "must be an integer from 1 to "+strconv.Itoa(max))
	}
	return n, nil
}

func parseBool(q url.Values, name string) (*bool, error) {
	switch q.Get(name) {
	case "":
		return nil, nil
	case "true", "1":
		t := true
		return &t, nil
	case "false", "0":
		f := false
		return &f, nil
	}
	return nil, badParam(name, "must be true or false")
}

// parseTime accepts RFC 3339 or a date (YYYY-MM-DD, midnight UTC).
func parseTime(q url.Values, name string, def time.Time) (time.Time, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return checkYear(name, t.UTC())
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return checkYear(name, t)
	}
	return time.Time{}, badParam(name, "must be an RFC 3339 time or a date YYYY-MM-DD")
}

// checkYear keeps times inside what ClickHouse's DateTime holds.
func checkYear(name string, t time.Time) (time.Time, error) {
	if t.Year() < 1971 || t.Year() > 2100 {
		return time.Time{}, badParam(name, "must lie between 1971 and 2100")
	}
	return t, nil
}

// Cursors are opaque to clients: base64url of a version tag and the keyset
// position, so the encoding can change without breaking old clients badly
// (an old cursor is a clean 400).
func encodeCursor(parts ...string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("v1\x00" + strings.Join(parts, "\x00")))
}

func decodeCursor(v string, n int) ([]string, error) {
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return nil, badParam("cursor", "not a cursor this API issued")
	}
	parts := strings.Split(string(b), "\x00")
	if len(parts) != n+1 || parts[0] != "v1" {
		return nil, badParam("cursor", "not a cursor this API issued")
	}
	return parts[1:], nil
}

func timelineCursor(p warehouse.TimelinePos) string {
	return encodeCursor(strconv.FormatInt(p.TimeMs, 10), strconv.FormatUint(p.Seq, 10))
}

func parseTimelineCursor(v string) (*warehouse.TimelinePos, error) {
	if v == "" {
		return nil, nil
	}
	parts, err := decodeCursor(v, 2)
	if err != nil {
		return nil, err
	}
	ms, err1 := strconv.ParseInt(parts[0], 10, 64)
	seq, err2 := strconv.ParseUint(parts[1], 10, 64)
	if err1 != nil || err2 != nil {
		return nil, badParam("cursor", "not a cursor this API issued")
	}
	return &warehouse.TimelinePos{TimeMs: ms, Seq: seq}, nil
}

// periodStart truncates t to the start of its period, as ClickHouse's
// toDate, toMonday and toStartOfMonth do in UTC.
func periodStart(t time.Time, iv warehouse.Interval) time.Time {
	t = t.UTC()
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	switch iv {
	case warehouse.Week:
		wd := (int(d.Weekday()) + 6) % 7 // Monday = 0
		return d.AddDate(0, 0, -wd)
	case warehouse.Month:
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	return d
}

func nextPeriod(t time.Time, iv warehouse.Interval) time.Time {
	switch iv {
	case warehouse.Week:
		return t.AddDate(0, 0, 7)
	case warehouse.Month:
		return t.AddDate(0, 1, 0)
	}
	return t.AddDate(0, 0, 1)
}

// periods lists the period starts that overlap [from, to), at most max+1.
func periods(from, to time.Time, iv warehouse.Interval, max int) []time.Time {
	var out []time.Time
	for p := periodStart(from, iv); p.Before(to) && len(out) <= max; p = nextPeriod(p, iv) {
		out = append(out, p)
	}
	return out
}
