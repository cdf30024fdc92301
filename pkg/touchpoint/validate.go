package touchpoint

import (
	"fmt"
	"mime"
	"strconv"
	"time"
	"unicode/utf8"
)

// MaxFuture is how far in the future an event's time may lie: clocks drift,
// but an event dated next month is a bug that would corrupt the rules.
const MaxFuture = 7 * 24 * time.Hour

// Limits on attribute sizes, in bytes.
const (
	MaxIDLen     = 256
	MaxSourceLen = 256
	MaxExtLen    = 1024
)

// Validate checks a fact event (a touchpoint or the offboarded ops event)
// against the contract and returns its decoded payload. now is the reference
// for the future-time rule. Errors wrap [ErrInvalid], [ErrUnknownType] or
// [ErrMalformed]; a [*ValidationError] lists every broken rule.
//
// It mirrors the JSON Schemas in schemas/events (a test keeps the two in
// agreement) without their cost: it runs on every event a consumer reads.
func Validate(e *Event, now time.Time) (Payload, error) {
	info, ok := types[e.Type]
	if !ok {
		return Payload{}, unknownType(e.Type)
	}
	var errs errList
	if info.derived {
		errs.add("type", "enum", "is a derived event type that only journey emits, got "+quote(e.Type))
		return Payload{}, errs.err()
	}
	checkAttrs(e, now, &errs)
	p, err := DecodePayload(info.kind, e.Data)
	if err != nil {
		ve, ok := err.(*ValidationError)
		if !ok {
			return Payload{}, err
		}
		errs.errs = append(errs.errs, ve.Errors...)
		if p.seen == 0 && p.set == 0 && len(ve.Errors) == 1 && ve.Errors[0].Field == "data" {
			return p, errs.err() // not an object: no rule below applies
		}
	}
	// Rules run even after type errors so that one pass names every
	// broken rule; a property present with a bad type is not "missing".
	checkPayload(info.kind, &p, &errs)
	return p, errs.err()
}

// checkString reports the first broken rule of a required string attribute:
// present, at most maxLen bytes, valid UTF-8, no control characters.
func checkString(errs *errList, name, v string, maxLen int, missing string) {
	switch {
	case v == "":
		errs.add(name, "required", missing)
	case len(v) > maxLen:
		errs.add(name, "maxLength", "must be at most "+strconv.Itoa(maxLen)+" bytes, got "+strconv.Itoa(len(v)))
	case !utf8.ValidString(v):
		errs.add(name, "utf8", "must be valid UTF-8")
	default:
		checkControl(errs, name, v)
	}
}

func checkAttrs(e *Event, now time.Time, errs *errList) {
	checkString(errs, "id", e.ID, MaxIDLen, "is required")
	checkString(errs, "source", e.Source, MaxSourceLen, "is required")
	checkString(errs, "subject", e.Subject, MaxSubjectLen, "is required: it is the customer id")
	switch {
	case e.Time.IsZero():
		errs.add("time", "required", "is required")
	case e.Time.After(now.Add(MaxFuture)):
		errs.add("time", "maximum", "must not be more than 7 days in the future, got "+e.Time.UTC().Format(time.RFC3339))
	case e.Time.Year() < 1970:
		errs.add("time", "minimum", "must not be before 1970, got "+e.Time.UTC().Format(time.RFC3339))
	}
	if e.DataContentType != "" && e.DataContentType != ContentTypeJSON {
		mt, _, err := mime.ParseMediaType(e.DataContentType)
		if err != nil || mt != ContentTypeJSON {
			errs.add("datacontenttype", "enum", "must be application/json, got "+quote(e.DataContentType))
		}
	}
	if e.DataSchema != "" && e.DataSchema != SchemaURI(e.Type) {
		errs.add("dataschema", "const", "must be "+SchemaURI(e.Type)+" for "+e.Type+", got "+quote(e.DataSchema))
	}
	for name, v := range e.Extensions {
		switch {
		case reserved[name]:
			errs.add(name, "reserved", "is a context attribute, not an extension")
		case !validExtensionName(name):
			errs.add(quote(name), "name", "extension names must be 1-64 characters a-z or 0-9")
		case len(v) > MaxExtLen:
			errs.add(name, "maxLength", "extension values must be at most "+strconv.Itoa(MaxExtLen)+" bytes")
		}
	}
	if v, ok := e.Extensions[ExtConsent]; ok {
		if _, err := ParseConsent(v); err != nil {
			errs.add(ExtConsent, "pattern", err.Error())
		}
	}
	if _, ok := Revision(e); !ok {
		errs.add(ExtRevision, "pattern", "must be a whole number from 0 to "+strconv.Itoa(MaxRevision)+" without leading zeros, got "+quote(e.Extensions[ExtRevision]))
	}
}

// checkControl refuses a control character in an identifier (see
// [ControlChar]): it would be changed or hidden on the way, never kept.
func checkControl(errs *errList, field, v string) {
	if r, at, ok := ControlChar(v); ok {
		errs.add(field, "pattern", fmt.Sprintf("must not contain control characters, got U+%04X at byte %d", r, at))
	}
}

var (
	enumDMU       = []string{"decision_maker", "influencer", "buyer", "user", "gatekeeper"}
	enumChannel   = []string{"web", "store", "phone", "email", "event", "other"}
	enumQuote     = []string{"requested", "sent", "accepted", "rejected", "expired"}
	enumOrder     = []string{"placed", "cancelled"}
	enumComplaint = []string{"opened", "resolved"}
	enumSeverity  = []string{"low", "medium", "high"}
)

// Statuses per kind, exported for consumers that switch on them.
const (
	StatusPlaced    = "placed"
	StatusCancelled = "cancelled"
	StatusOpened    = "opened"
	StatusResolved  = "resolved"
)

func checkPayload(k Kind, p *Payload, errs *errList) {
	req := func(fs ...Field) {
		for _, f := range fs {
			if !p.Has(f) && p.seen&(1<<f) == 0 {
				errs.add("data."+f.String(), "required", "is required for "+string(k)+" events")
			}
		}
	}
	str := func(f Field, min, max int) {
		if !p.Has(f) {
			return
		}
		n := utf8.RuneCountInString(*p.str(f))
		if n < min {
			errs.add("data."+f.String(), "minLength", "must not be empty")
		} else if n > max {
			errs.add("data."+f.String(), "maxLength", "must be at most "+strconv.Itoa(max)+" characters, got "+strconv.Itoa(n))
		}
	}
	enum := func(f Field, vals []string) {
		if !p.Has(f) {
			return
		}
		v := *p.str(f)
		for _, a := range vals {
			if v == a {
				return
			}
		}
		errs.add("data."+f.String(), "enum", "must be one of "+join(vals)+", got "+quote(v))
	}
	// between is the range rule of an integer field, v its value.
	between := func(f Field, v, min, max int64) {
		if !p.Has(f) {
			return
		}
		if v < min {
			errs.add("data."+f.String(), "minimum", "must be at least "+strconv.FormatInt(min, 10)+", got "+strconv.FormatInt(v, 10))
		} else if v > max {
			errs.add("data."+f.String(), "maximum", "must be at most "+strconv.FormatInt(max, 10)+", got "+strconv.FormatInt(v, 10))
		}
	}
	switch k {
	case KindVisit:
		req(FChannel)
	case KindQuote:
		req(FQuoteID, FStatus, FAmount, FCurrency)
	case KindOrder:
		req(FOrderID, FStatus, FAmount, FCurrency)
	case KindComplaint:
		req(FComplaintID, FStatus, FCategory)
	case KindSurvey:
		req(FSurveyID, FScore)
	}
	str(FAccountID, 1, 128)
	str(FContactID, 1, 128)
	enum(FDMURole, enumDMU)
	enum(FChannel, enumChannel)
	str(FURL, 0, 2048)
	str(FCampaign, 0, 128)
	str(FSessionID, 0, 128)
	str(FQuoteID, 1, 128)
	str(FOrderID, 1, 128)
	str(FComplaintID, 1, 128)
	str(FSurveyID, 1, 128)
	switch k {
	case KindQuote:
		enum(FStatus, enumQuote)
	case KindOrder:
		enum(FStatus, enumOrder)
	case KindComplaint:
		enum(FStatus, enumComplaint)
	}
	if p.Has(FCurrency) && !isCurrency(p.Currency) {
		errs.add("data.currency", "pattern", "must be an ISO 4217 code of 3 capital letters, got "+quote(p.Currency))
	}
	between(FItems, p.Items, 1, 1000000)
	str(FCategory, 1, 64)
	enum(FSeverity, enumSeverity)
	str(FText, 0, 4096)
	between(FScore, p.Score, 0, 10)
	str(FComment, 0, 4096)
	str(FReason, 0, 256)
}

func isCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

func join(vals []string) string {
	s := ""
	for i, v := range vals {
		if i > 0 {
			s += ", "
		}
		s += v
	}
	return s
}
