package ruleset

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/klantreis/journey/pkg/journey"
)

// Base is the name of the base version: the configured thresholds, the
// projector's own bucket, consumers and the plain tables.
const Base = "v1"

// ErrSpec marks a rules spec or version name that cannot be parsed.
var ErrSpec = errors.New("ruleset: bad rules spec")

// Version is one rules version: its name, the thresholds and what the
// operator wrote to get them.
type Version struct {
	Name string `json:"name"`
	// Spec is the operator's text ("loyal=2/365d"), empty for the base.
	Spec  string        `json:"spec,omitempty"`
	Rules journey.Rules `json:"rules"`
}

// IsBase reports the base version.
func (v Version) IsBase() bool { return v.Name == Base || v.Name == "" }

// suffix is "__<name>", empty for the base.
func (v Version) suffix() string {
	if v.IsBase() {
		return ""
	}
	return "__" + v.Name
}

// TableSuffix is appended to the projection tables' names: "" for the
// base, "__v2" for v2.
func (v Version) TableSuffix() string { return v.suffix() }

// Bucket is the name of one of the version's key-value buckets, given the
// base's name of it (journey_customers -> journey_customers__v2).
func (v Version) Bucket(base string) string { return base + v.suffix() }

// Durable is the prefix of the version's consumers, given the base's
// (journey-projector -> journey-projector-v2; partition k appends -p<k>).
func (v Version) Durable(base string) string {
	if v.IsBase() {
		return base
	}
	return base + "-" + v.Name
}

// ValidName reports a version name of the form v<N>, N >= 1.
func ValidName(name string) bool {
	n, ok := number(name)
	return ok && n >= 1
}

func number(name string) (int, bool) {
	if len(name) < 2 || name[0] != 'v' {
		return 0, false
	}
	n, err := strconv.Atoi(name[1:])
	if err != nil || strconv.Itoa(n) != name[1:] {
		return 0, false
	}
	return n, true
}

// Next returns the name after the highest of names (v2 when there is none
// but the base).
func Next(names []string) string {
	hi := 1
	for _, n := range names {
		if k, ok := number(n); ok && k > hi {
			hi = k
		}
	}
	return "v" + strconv.Itoa(hi+1)
}

// ParseSpec reads thresholds over base. The spec is a comma-separated list
// of
//
//	loyal=<orders>/<window>   e.g. loyal=2/365d
//	inactive=<after>          e.g. inactive=180d
//
// where a window is a number of days ("365d") or a Go duration ("8760h").
// Thresholds it does not name keep base's value. The result is validated.
func ParseSpec(spec string, base journey.Rules) (journey.Rules, error) {
	r := base
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return r, fmt.Errorf("%w: empty; want e.g. loyal=2/365d or inactive=180d", ErrSpec)
	}
	seen := map[string]bool{}
	for _, part := range strings.Split(spec, ",") {
		key, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if !ok || val == "" {
			return r, fmt.Errorf("%w: %q is not key=value", ErrSpec, part)
		}
		if seen[key] {
			return r, fmt.Errorf("%w: %s given twice", ErrSpec, key)
		}
		seen[key] = true
		switch key {
		case "loyal":
			n, w, ok := strings.Cut(val, "/")
			orders, err := strconv.Atoi(n)
			if !ok || err != nil {
				return r, fmt.Errorf("%w: loyal=%s: want <orders>/<window>, e.g. loyal=2/365d", ErrSpec, val)
			}
			win, err := parseSpan(w)
			if err != nil {
				return r, fmt.Errorf("%w: loyal=%s: %v", ErrSpec, val, err)
			}
			r.LoyalOrders, r.LoyalWindow = orders, win
		case "inactive":
			d, err := parseSpan(val)
			if err != nil {
				return r, fmt.Errorf("%w: inactive=%s: %v", ErrSpec, val, err)
			}
			r.InactiveAfter = d
		default:
			return r, fmt.Errorf("%w: unknown threshold %q (known: loyal, inactive)", ErrSpec, key)
		}
	}
	if err := r.Validate(); err != nil {
		return r, fmt.Errorf("%w: %w", ErrSpec, err)
	}
	return r, nil
}

// parseSpan reads "365d" as days, anything else as a Go duration.
func parseSpan(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q is not a number of days", s)
		}
		return time.Duration(n) * journey.Day, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is neither days (365d) nor a duration (8760h)", s)
	}
	return d, nil
}

// FormatSpec renders rules as a spec ParseSpec reads back.
func FormatSpec(r journey.Rules) string {
	return "loyal=" + strconv.Itoa(r.LoyalOrders) + "/" + span(r.LoyalWindow) + ",inactive=" + span(r.InactiveAfter)
}

func span(d time.Duration) string {
	if d%journey.Day == 0 {
		return strconv.FormatInt(int64(d/journey.Day), 10) + "d"
	}
	return d.String()
}
