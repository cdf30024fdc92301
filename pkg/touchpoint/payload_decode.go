package touchpoint

import (
	"errors"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// allowed lists the properties each kind's schema admits (the common ones
// plus its own); anything else is an error, so a typo such as "scroe" is
// reported instead of silently dropped.
var allowed = func() map[Kind]uint32 {
	common := bits(FAccountID, FContactID, FDMURole, FChannel)
	return map[Kind]uint32{
		KindVisit:      common | bits(FURL, FCampaign, FSessionID),
		KindQuote:      common | bits(FQuoteID, FStatus, FAmount, FCurrency),
		KindOrder:      common | bits(FOrderID, FStatus, FAmount, FCurrency, FItems),
		KindComplaint:  common | bits(FComplaintID, FStatus, FCategory, FSeverity, FText),
		KindSurvey:     common | bits(FSurveyID, FScore, FComment),
		KindOffboarded: common | bits(FReason),
	}
}()

func bits(fs ...Field) uint32 {
	var b uint32
	for _, f := range fs {
		b |= 1 << f
	}
	return b
}

var parsers fastjson.ParserPool

// dataPaths are the error paths of the payload fields, built once: the
// decoder runs per event and must not concatenate per property.
var dataPaths = func() (p [numFields]string) {
	for i, n := range fieldNames {
		p[i] = "data." + n
	}
	return p
}()

// DecodePayload parses a fact event's data into a Payload. It reports bad
// JSON as [ErrMalformed] and wrong property types or unknown properties as a
// [*ValidationError]; the rules (required, enums, ranges) are [Validate]'s.
func DecodePayload(k Kind, data []byte) (Payload, error) {
	mask, ok := allowed[k]
	if !ok {
		return Payload{}, fmt.Errorf("%w: kind %q has no fact payload", ErrUnknownType, k)
	}
	p := parsers.Get()
	defer parsers.Put(p)
	v, err := p.ParseBytes(data)
	if err == nil {
		err = CheckJSON(data)
	}
	if err != nil {
		return Payload{}, fmt.Errorf("%w: data is not valid JSON: %v", ErrMalformed, err)
	}
	obj, err := v.Object()
	if err != nil {
		return Payload{}, &ValidationError{Errors: []FieldError{{Field: "data", Rule: "type", Msg: "must be a JSON object, got " + v.Type().String()}}, kind: ErrInvalid}
	}
	var out Payload
	var errs errList
	var scratch [32]byte
	obj.Visit(func(key []byte, v *fastjson.Value) {
		f, known := fieldByName[string(key)]
		if !known || mask&(1<<f) == 0 {
			errs.add("data."+string(key), "unknown", "is not a property of "+string(k)+" events")
			return
		}
		path := dataPaths[f]
		if out.seen&(1<<f) != 0 {
			errs.add(path, "duplicate", twice)
			return
		}
		out.seen |= 1 << f
		switch f {
		case FAmount:
			a, ok := decodeAmount(v, path, &errs, scratch[:0])
			if !ok {
				return
			}
			out.Amount = a
		case FScore, FItems:
			n, ok := decodeInteger(v, path, &errs, scratch[:0])
			if !ok {
				return
			}
			if f == FScore {
				out.Score = n
			} else {
				out.Items = n
			}
		default:
			s, ok := decodeString(v, path, &errs)
			if !ok {
				return
			}
			*out.str(f) = s
		}
		out.mark(f)
	})
	return out, errs.err()
}

// decodeAmount reads an amount given as a JSON number or a decimal
// string; on a bad one it adds the error at path and returns false.
// scratch is room for the number's text, so that reading it allocates
// nothing.
func decodeAmount(v *fastjson.Value, path string, errs *errList, scratch []byte) (Amount, bool) {
	switch v.Type() {
	case fastjson.TypeNumber:
		raw := v.MarshalTo(scratch[:0])
		a, rule := parseNumberAmount(raw)
		switch rule {
		case "":
			return a, true
		case "minimum":
			errs.add(path, rule, "must be >= 0, got "+string(raw))
		case "maximum":
			errs.add(path, rule, "must be at most "+maxAmount+", got "+string(raw))
		case "multipleOf":
			errs.add(path, rule, "must be a multiple of 0.01 (at most 2 decimals), got "+string(raw))
		default:
			errs.add(path, rule, "must be a decimal number, got "+string(raw))
		}
		return Amount{}, false
	case fastjson.TypeString:
		s := v.GetStringBytes()
		a, ok := ParseAmount(string(s))
		if !ok {
			errs.add(path, "format", "must be a decimal >= 0 with at most 2 decimals, got "+quote(string(s)))
			return Amount{}, false
		}
		return a, true
	default:
		errs.add(path, "type", "must be a number or a decimal string, got "+v.Type().String())
		return Amount{}, false
	}
}

// decodeInteger reads an integer property; on a bad one it adds the
// error at path and returns false. scratch is as for decodeAmount.
func decodeInteger(v *fastjson.Value, path string, errs *errList, scratch []byte) (int64, bool) {
	if v.Type() != fastjson.TypeNumber {
		errs.add(path, "type", "must be an integer, got "+v.Type().String())
		return 0, false
	}
	if !jsonNumber(v.MarshalTo(scratch[:0])) {
		errs.add(path, "type", "must be a JSON number, got "+string(v.MarshalTo(scratch[:0])))
		return 0, false
	}
	n, err := v.Int64()
	if err != nil {
		// JSON Schema counts 9.0 as an integer; 9.5 is not.
		fv, ferr := v.Float64()
		switch {
		case ferr != nil || math.IsInf(fv, 0) || fv != math.Trunc(fv):
			errs.add(path, "type", "must be an integer, got "+string(v.MarshalTo(scratch[:0])))
			return 0, false
		case fv > 1<<53:
			n = math.MaxInt64 // an integer all the same; the range check names it
		case fv < -(1 << 53):
			n = math.MinInt64
		default:
			n = int64(fv)
		}
	}
	return n, true
}

// decodeString reads a string property, interned; on a bad one it adds
// the error at path and returns false.
func decodeString(v *fastjson.Value, path string, errs *errList) (string, bool) {
	if v.Type() != fastjson.TypeString {
		errs.add(path, "type", "must be a string, got "+v.Type().String())
		return "", false
	}
	b := v.GetStringBytes()
	if !utf8.Valid(b) {
		errs.add(path, "utf8", "must be valid UTF-8")
		return "", false
	}
	return intern(b), true
}

func (p *Payload) str(f Field) *string {
	switch f {
	case FAccountID:
		return &p.AccountID
	case FContactID:
		return &p.ContactID
	case FDMURole:
		return &p.DMURole
	case FChannel:
		return &p.Channel
	case FURL:
		return &p.URL
	case FCampaign:
		return &p.Campaign
	case FSessionID:
		return &p.SessionID
	case FQuoteID:
		return &p.QuoteID
	case FOrderID:
		return &p.OrderID
	case FComplaintID:
		return &p.ComplaintID
	case FSurveyID:
		return &p.SurveyID
	case FStatus:
		return &p.Status
	case FCurrency:
		return &p.Currency
	case FCategory:
		return &p.Category
	case FSeverity:
		return &p.Severity
	case FText:
		return &p.Text
	case FComment:
		return &p.Comment
	case FReason:
		return &p.Reason
	}
	panic("touchpoint: not a string field: " + f.String())
}

// maxAmount is the largest amount: 15 integer digits, as the schema's
// string pattern and its number maximum allow.
const maxAmount = "999999999999999.99"

// parseNumberAmount converts a JSON number literal to an exact Amount with
// the JSON Schema's arithmetic: the value counts, not its spelling, so 1e2,
// 19.990 and -0 are valid amounts and 1.005 is not a multiple of 0.01.
// rule is "" on success, else the schema keyword the value breaks.
func parseNumberAmount(raw []byte) (Amount, string) {
	if !jsonNumber(raw) {
		return Amount{}, "format"
	}
	i := 0
	neg := false
	if i < len(raw) && raw[i] == '-' {
		neg = true
		i++
	}
	var d decimal
	i, rule := d.scanMantissa(raw, i)
	if rule != "" {
		return Amount{}, rule
	}
	if i < len(raw) {
		if rule := d.scanExponent(raw, i); rule != "" {
			return Amount{}, rule
		}
	}
	return d.amount(neg)
}

// decimal is a number literal's significant digits d1d2... and where its
// decimal point falls: the value is 0.d1d2... * 10^point.
type decimal struct {
	digits    [32]byte
	nd, point int
}

// scanMantissa reads the digits and the decimal point from raw[i:] and
// returns where they end, with the rule raw breaks ("" for none).
func (d *decimal) scanMantissa(raw []byte, i int) (int, string) {
	sawDigit, inFrac := false, false
	for ; i < len(raw); i++ {
		c := raw[i]
		if c == '.' {
			if inFrac {
				return i, "format"
			}
			inFrac = true
			continue
		}
		if c < '0' || c > '9' {
			break
		}
		sawDigit = true
		if d.nd == 0 && c == '0' {
			if inFrac {
				d.point--
			}
			continue
		}
		if d.nd == len(d.digits) {
			// Past 32 significant digits the value is over the maximum
			// or has more than 2 decimals; keep counting the point only.
			if !inFrac {
				d.point++
			} else if c != '0' {
				return i, "multipleOf"
			}
			continue
		}
		d.digits[d.nd] = c
		d.nd++
		if !inFrac {
			d.point++
		}
	}
	if !sawDigit {
		return i, "format"
	}
	return i, ""
}

// scanExponent reads the exponent that raw[i:] must be and moves the
// point by it; it returns the rule raw breaks ("" for none).
func (d *decimal) scanExponent(raw []byte, i int) string {
	if raw[i] != 'e' && raw[i] != 'E' {
		return "format"
	}
	i++
	eneg := false
	if i < len(raw) && (raw[i] == '+' || raw[i] == '-') {
		eneg = raw[i] == '-'
		i++
	}
	if i == len(raw) {
		return "format"
	}
	exp := 0
	for ; i < len(raw); i++ {
		c := raw[i]
		if c < '0' || c > '9' {
			return "format"
		}
		if exp < 100000 {
			exp = exp*10 + int(c-'0')
		}
	}
	if eneg {
		exp = -exp
	}
	d.point += exp
	return ""
}

// amount converts d, negative if neg, to cents, or returns the rule the
// value breaks.
func (d *decimal) amount(neg bool) (Amount, string) {
	nd := d.nd
	for nd > 0 && d.digits[nd-1] == '0' {
		nd--
	}
	if nd == 0 {
		return Amount{}, "" // zero, including -0 and 0e5
	}
	if neg {
		return Amount{}, "minimum"
	}
	// cents = digits * 10^(point - nd + 2)
	scale := d.point - nd + 2
	if scale < 0 {
		return Amount{}, "multipleOf"
	}
	if d.point > 15 {
		return Amount{}, "maximum"
	}
	var cents int64
	for j := 0; j < nd; j++ {
		cents = cents*10 + int64(d.digits[j]-'0')
	}
	for ; scale > 0; scale-- {
		cents *= 10
	}
	return Amount{Cents: cents}, ""
}

// CheckJSON rejects what fastjson's parser lets through but JSON forbids,
// or decodes to something else than was sent: raw control characters and
// bad escapes in strings, and lone UTF-16 surrogate escapes, which encode
// no character (fastjson keeps "\ud800" as its six bytes of text, and
// turns "\ud800\u0041" into U+FFFD, losing the A). Only input with a
// control byte or a backslash can have them, so most events skip the
// second pass.
func CheckJSON(b []byte) error {
	for _, c := range b {
		if c < 0x20 || c == '\\' {
			if err := fastjson.ValidateBytes(b); err != nil {
				return err
			}
			return checkSurrogates(b)
		}
	}
	return nil
}

// ErrLoneSurrogate marks a \uD800-\uDFFF escape that is not half of a
// surrogate pair.
var ErrLoneSurrogate = errors.New("a lone UTF-16 surrogate escape encodes no character")

// checkSurrogates finds a lone surrogate escape in valid JSON text.
func checkSurrogates(b []byte) error {
	in := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !in {
			in = c == '"'
			continue
		}
		switch c {
		case '"':
			in = false
		case '\\':
			if i+1 < len(b) && b[i+1] == 'u' {
				r := hex4(b[i+2:])
				switch {
				case r >= 0xD800 && r <= 0xDBFF:
					if i+11 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
						if lo := hex4(b[i+8:]); lo >= 0xDC00 && lo <= 0xDFFF {
							i += 11
							continue
						}
					}
					return fmt.Errorf("%w: %s at byte %d", ErrLoneSurrogate, b[i:i+6], i)
				case r >= 0xDC00 && r <= 0xDFFF:
					return fmt.Errorf("%w: %s at byte %d", ErrLoneSurrogate, b[i:i+6], i)
				}
				i += 5
				continue
			}
			i++ // a one-character escape
		}
	}
	return nil
}

// hex4 reads 4 hex digits (ValidateBytes has checked they are there).
func hex4(b []byte) int {
	if len(b) < 4 {
		return -1
	}
	v := 0
	for _, c := range b[:4] {
		v <<= 4
		switch {
		case c >= '0' && c <= '9':
			v |= int(c - '0')
		case c >= 'a' && c <= 'f':
			v |= int(c-'a') + 10
		case c >= 'A' && c <= 'F':
			v |= int(c-'A') + 10
		default:
			return -1
		}
	}
	return v
}

// jsonNumber reports whether raw follows JSON's number grammar,
// -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, which fastjson does not
// enforce (it takes 007, 1., inf and nan).
func jsonNumber(raw []byte) bool {
	i, n := 0, len(raw)
	if i < n && raw[i] == '-' {
		i++
	}
	digits := func() int {
		start := i
		for i < n && raw[i] >= '0' && raw[i] <= '9' {
			i++
		}
		return i - start
	}
	if i < n && raw[i] == '0' {
		i++
	} else if digits() == 0 {
		return false
	}
	if i < n && raw[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < n && (raw[i] == 'e' || raw[i] == 'E') {
		i++
		if i < n && (raw[i] == '+' || raw[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == n
}
