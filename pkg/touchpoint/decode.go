package touchpoint

import (
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
		path := "data." + fieldNames[f]
		switch f {
		case FAmount:
			switch v.Type() {
			case fastjson.TypeNumber:
				raw := v.MarshalTo(scratch[:0])
				a, ok := ParseAmount(string(raw))
				if !ok {
					if fv, err := v.Float64(); err == nil && fv < 0 {
						errs.add(path, "minimum", "must be >= 0, got "+string(raw))
						return
					}
					errs.add(path, "format", "must be a decimal with at most 2 decimals, got "+string(raw))
					return
				}
				out.Amount = a
			case fastjson.TypeString:
				s := v.GetStringBytes()
				a, ok := ParseAmount(string(s))
				if !ok {
					errs.add(path, "format", "must be a decimal >= 0 with at most 2 decimals, got "+quote(string(s)))
					return
				}
				out.Amount = a
			default:
				errs.add(path, "type", "must be a number or a decimal string, got "+v.Type().String())
				return
			}
		case FScore, FItems:
			if v.Type() != fastjson.TypeNumber {
				errs.add(path, "type", "must be an integer, got "+v.Type().String())
				return
			}
			n, err := v.Int64()
			if err != nil {
				// JSON Schema counts 9.0 as an integer; 9.5 is not.
				fv, ferr := v.Float64()
				if ferr != nil || fv != math.Trunc(fv) || math.Abs(fv) > 1<<53 {
					errs.add(path, "type", "must be an integer, got "+string(v.MarshalTo(scratch[:0])))
					return
				}
				n = int64(fv)
			}
			if f == FScore {
				out.Score = n
			} else {
				out.Items = n
			}
		default:
			if v.Type() != fastjson.TypeString {
				errs.add(path, "type", "must be a string, got "+v.Type().String())
				return
			}
			b := v.GetStringBytes()
			if !utf8.Valid(b) {
				errs.add(path, "utf8", "must be valid UTF-8")
				return
			}
			*out.str(f) = string(b)
		}
		out.mark(f)
	})
	return out, errs.err()
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
