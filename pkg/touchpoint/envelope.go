package touchpoint

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// Header is the shape of NATS and HTTP headers alike.
type Header = map[string][]string

// Header names of the CloudEvents binary mode (NATS and HTTP bindings).
const (
	HeaderPrefix      = "ce-"
	HeaderContentType = "Content-Type"
)

// MarshalStructured encodes the event in the CloudEvents JSON format
// (structured mode). A JSON payload is embedded as "data".
func (e *Event) MarshalStructured() []byte {
	return e.AppendStructured(make([]byte, 0, 256+len(e.Data)))
}

// AppendStructured appends the structured encoding to dst.
func (e *Event) AppendStructured(dst []byte) []byte {
	dst = append(dst, `{"specversion":"1.0","id":`...)
	dst = appendJSONString(dst, e.ID)
	dst = append(dst, `,"source":`...)
	dst = appendJSONString(dst, e.Source)
	dst = append(dst, `,"type":`...)
	dst = appendJSONString(dst, e.Type)
	if e.Subject != "" {
		dst = append(dst, `,"subject":`...)
		dst = appendJSONString(dst, e.Subject)
	}
	if !e.Time.IsZero() {
		dst = append(dst, `,"time":"`...)
		dst = e.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
		dst = append(dst, '"')
	}
	if e.DataContentType != "" {
		dst = append(dst, `,"datacontenttype":`...)
		dst = appendJSONString(dst, e.DataContentType)
	}
	if e.DataSchema != "" {
		dst = append(dst, `,"dataschema":`...)
		dst = appendJSONString(dst, e.DataSchema)
	}
	for k, v := range e.Extensions {
		dst = append(dst, ',')
		dst = appendJSONString(dst, k)
		dst = append(dst, ':')
		dst = appendJSONString(dst, v)
	}
	if len(e.Data) > 0 {
		if fastjson.ValidateBytes(e.Data) == nil {
			dst = append(dst, `,"data":`...)
			dst = append(dst, e.Data...)
		} else {
			dst = append(dst, `,"data_base64":"`...)
			dst = base64.StdEncoding.AppendEncode(dst, e.Data)
			dst = append(dst, '"')
		}
	}
	return append(dst, '}')
}

// UnmarshalStructured decodes one event in the CloudEvents JSON format.
func UnmarshalStructured(b []byte) (Event, error) {
	p := parsers.Get()
	defer parsers.Put(p)
	v, err := p.ParseBytes(b)
	if err == nil {
		err = CheckJSON(b)
	}
	if err != nil {
		return Event{}, fmt.Errorf("%w: not valid JSON: %v", ErrMalformed, err)
	}
	return FromJSONValue(v)
}

// FromJSONValue decodes one structured event from a parsed JSON value (used
// for the elements of a batch). It copies what it keeps.
func FromJSONValue(v *fastjson.Value) (Event, error) {
	obj, err := v.Object()
	if err != nil {
		return Event{}, fmt.Errorf("%w: a structured event must be a JSON object, got %s", ErrMalformed, v.Type())
	}
	var e Event
	var errs errList
	var specversion string
	var hasSpec, hasData, hasB64 bool
	var dataVal *fastjson.Value
	var b64 []byte
	var given names
	obj.Visit(func(key []byte, v *fastjson.Value) {
		k := attrName(key)
		if given.add(k) {
			errs.add(k, "duplicate", twice)
			return
		}
		if k == "data" {
			hasData = true
			dataVal = v
			return
		}
		if v.Type() != fastjson.TypeString {
			if reserved[k] {
				errs.add(k, "type", "must be a string, got "+v.Type().String())
				return
			}
			switch v.Type() {
			case fastjson.TypeNumber, fastjson.TypeTrue, fastjson.TypeFalse:
				setExt(&e, k, string(v.MarshalTo(nil)))
			case fastjson.TypeNull:
				// CloudEvents: a null attribute is the same as an absent one.
			default:
				errs.add(k, "type", "extension attributes must be strings, numbers or booleans, got "+v.Type().String())
			}
			return
		}
		sb := v.GetStringBytes()
		if !utf8.Valid(sb) {
			errs.add(k, "utf8", "must be valid UTF-8")
			return
		}
		s := intern(sb)
		switch k {
		case "specversion":
			specversion, hasSpec = s, true
		case "datacontenttype":
			e.DataContentType = s
		case "data_base64":
			hasB64 = true
			b64 = sb
		default:
			setAttr(&e, k, s, &errs)
		}
	})
	if !hasSpec {
		errs.add("specversion", "required", "is required")
	} else if specversion != SpecVersion {
		errs.add("specversion", "const", "must be \"1.0\", got "+quote(specversion))
	}
	switch {
	case hasData && hasB64:
		errs.add("data", "oneOf", "data and data_base64 must not both be present")
	case hasB64:
		d, err := base64.StdEncoding.DecodeString(string(b64))
		if err != nil {
			errs.add("data_base64", "format", "must be base64: "+err.Error())
		}
		e.Data = d
	case hasData:
		if dataVal.Type() == fastjson.TypeString && e.DataContentType != "" && !isJSONContentType(e.DataContentType) {
			e.Data = []byte(string(dataVal.GetStringBytes()))
		} else {
			e.Data = dataVal.MarshalTo(make([]byte, 0, 256))
		}
	}
	if err := errs.err(); err != nil {
		return e, err
	}
	return e, nil
}

func isJSONContentType(ct string) bool {
	ct = strings.ToLower(strings.TrimSpace(strings.SplitN(ct, ";", 2)[0]))
	return ct == "application/json" || ct == "text/json" || strings.HasSuffix(ct, "+json")
}

func setExt(e *Event, k, v string) {
	if e.Extensions == nil {
		e.Extensions = make(map[string]string, 4)
	}
	e.Extensions[k] = v
}

// ParseTime parses an RFC 3339 timestamp as CloudEvents requires.
//
// It is stricter than time.Parse, which takes a one-digit hour: the shape
// must be RFC 3339's exactly, and the instant must lie in years 1..9999 in
// UTC, so that every accepted time re-encodes to a string that parses back.
func ParseTime(s string) (time.Time, error) {
	if !rfc3339Shape(s) {
		return time.Time{}, errors.New("not an RFC 3339 timestamp")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	t = t.UTC()
	if y := t.Year(); y < 1 || y > 9999 {
		return time.Time{}, errors.New("year out of range 1..9999")
	}
	return t, nil
}

// rfc3339Shape checks YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM) by character class.
func rfc3339Shape(s string) bool {
	const head = "dddd-dd-ddTdd:dd:dd"
	if len(s) < len(head)+1 {
		return false
	}
	for i := 0; i < len(head); i++ {
		c := s[i]
		switch head[i] {
		case 'd':
			if c < '0' || c > '9' {
				return false
			}
		case 'T':
			if c != 'T' && c != 't' {
				return false
			}
		default:
			if c != head[i] {
				return false
			}
		}
	}
	rest := s[len(head):]
	if rest[0] == '.' {
		i := 1
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 1 {
			return false
		}
		rest = rest[i:]
	}
	switch {
	case rest == "Z" || rest == "z":
		return true
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		return isDigit(rest[1]) && isDigit(rest[2]) && isDigit(rest[4]) && isDigit(rest[5])
	}
	return false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// SetBinaryHeaders writes the event's attributes into h as the CloudEvents
// binary mode does: "ce-<attribute>" headers, and datacontenttype as
// Content-Type. The payload travels as the message body ([Event.Data]).
func (e *Event) SetBinaryHeaders(h Header) {
	// One backing array for the values instead of a slice per header: this
	// runs for every published event.
	vals := make([]string, 0, 8+len(e.Extensions))
	set := func(k, v string) {
		vals = append(vals, v)
		h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	set("ce-specversion", SpecVersion)
	set("ce-id", e.ID)
	set("ce-source", e.Source)
	set("ce-type", e.Type)
	if e.Subject != "" {
		set("ce-subject", e.Subject)
	}
	if !e.Time.IsZero() {
		set("ce-time", e.Time.UTC().Format(time.RFC3339Nano))
	}
	if e.DataSchema != "" {
		set("ce-dataschema", e.DataSchema)
	}
	if e.DataContentType != "" {
		set(HeaderContentType, e.DataContentType)
	}
	for k, v := range e.Extensions {
		set(HeaderPrefix+k, v)
	}
}

// IsBinary reports whether headers carry a binary-mode event (a
// ce-specversion header, in any letter case).
func IsBinary(h Header) bool {
	for k := range h {
		if len(k) == len("ce-specversion") && strings.EqualFold(k, "ce-specversion") {
			return true
		}
	}
	return false
}

// setAttr sets a string attribute that both modes carry alike: a context
// attribute other than specversion and datacontenttype, or an extension.
func setAttr(e *Event, name, v string, errs *errList) {
	switch name {
	case "id":
		e.ID = v
	case "source":
		e.Source = v
	case "type":
		e.Type = v
	case "subject":
		e.Subject = v
	case "time":
		t, err := ParseTime(v)
		if err != nil {
			errs.add("time", "format", "must be an RFC 3339 timestamp, got "+quote(v))
			return
		}
		e.Time = t
	case "dataschema":
		e.DataSchema = v
	default:
		setExt(e, name, v)
	}
}

// FromBinary decodes a binary-mode event: attributes from the "ce-" headers
// (names in any letter case), datacontenttype from Content-Type, data from
// the body. With percentDecode the header values are percent-decoded first,
// as the HTTP binding requires; the NATS binding sends them verbatim.
func FromBinary(h Header, body []byte, percentDecode bool) (Event, error) {
	var e Event
	var errs errList
	var specversion string
	var given names
	for k, vs := range h {
		if len(vs) == 0 {
			continue
		}
		lk := lowerASCII(k)
		if lk == "content-type" {
			e.DataContentType = vs[0]
			continue
		}
		if !strings.HasPrefix(lk, HeaderPrefix) {
			continue
		}
		name := lk[len(HeaderPrefix):]
		if len(vs) > 1 || given.add(name) {
			errs.add(name, "duplicate", "header ce-"+name+" "+twice)
			continue
		}
		v := vs[0]
		if percentDecode && strings.IndexByte(v, '%') >= 0 {
			d, err := url.PathUnescape(v)
			if err != nil {
				errs.add(name, "format", "header ce-"+name+" has a bad percent-encoding")
				continue
			}
			v = d
		}
		if !utf8.ValidString(v) {
			errs.add(name, "utf8", "must be valid UTF-8")
			continue
		}
		switch name {
		case "specversion":
			specversion = v
		case "datacontenttype":
			// Binary mode carries it as Content-Type; tolerate both.
			if e.DataContentType == "" {
				e.DataContentType = v
			}
		default:
			setAttr(&e, name, v, &errs)
		}
	}
	if specversion == "" {
		errs.add("specversion", "required", "is required (header ce-specversion)")
	} else if specversion != SpecVersion {
		errs.add("specversion", "const", "must be \"1.0\", got "+quote(specversion))
	}
	e.Data = body
	return e, errs.err()
}

const hex = "0123456789abcdef"

func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// lowerASCII is strings.ToLower without the allocation when k is already
// lower case, as the NATS binding's headers are.
func lowerASCII(k string) string {
	for i := 0; i < len(k); i++ {
		if c := k[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(k)
		}
	}
	return k
}

// attrName returns the context attribute names as constants, so that
// decoding an event does not allocate a string per key; extension names
// are copied.
func attrName(key []byte) string {
	switch string(key) {
	case "specversion":
		return "specversion"
	case "id":
		return "id"
	case "source":
		return "source"
	case "type":
		return "type"
	case "subject":
		return "subject"
	case "time":
		return "time"
	case "datacontenttype":
		return "datacontenttype"
	case "dataschema":
		return "dataschema"
	case "data":
		return "data"
	case "data_base64":
		return "data_base64"
	}
	return string(key)
}

// interned holds the values most events repeat (spec version, content
// type, type names, schema URIs, payload enums); intern returns them
// without allocating.
var interned = func() map[string]string {
	m := map[string]string{SpecVersion: SpecVersion, ContentTypeJSON: ContentTypeJSON}
	for t := range types {
		m[t] = t
		m[SchemaURI(t)] = SchemaURI(t)
	}
	for _, enum := range [][]string{enumDMU, enumChannel, enumQuote, enumOrder, enumComplaint, enumSeverity, {"EUR", "USD", "GBP"}} {
		for _, v := range enum {
			m[v] = v
		}
	}
	return m
}()

func intern(b []byte) string {
	if s, ok := interned[string(b)]; ok {
		return s
	}
	return string(b)
}
