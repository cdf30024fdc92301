package touchpoint

import "github.com/klantreis/journey/schemas"

// Kind is the short name of an event type, used in subjects and columns.
type Kind string

// Touchpoint kinds emitted by product systems, and the ops event.
const (
	KindVisit      Kind = "visit"
	KindQuote      Kind = "quote"
	KindOrder      Kind = "order"
	KindComplaint  Kind = "complaint"
	KindSurvey     Kind = "survey"
	KindOffboarded Kind = "offboarded"
)

// Kinds of derived events, emitted by the projector.
const (
	KindStageChanged        Kind = "stage_changed"
	KindSatisfactionChanged Kind = "satisfaction_changed"
	KindAtRisk              Kind = "at_risk"
	// The account projection's (pkg/account): the subject is the account id.
	KindAccountStageChanged Kind = "account_stage_changed"
	KindAccountDMUGap       Kind = "account_dmu_gap"
	KindAccountAtRisk       Kind = "account_at_risk"
)

// CloudEvents type names: reverse-DNS and versioned, so a breaking change of
// a payload is a new type that consumers opt into.
const (
	TypeVisit      = "io.klantreis.touchpoint.visit.v1"
	TypeQuote      = "io.klantreis.touchpoint.quote.v1"
	TypeOrder      = "io.klantreis.touchpoint.order.v1"
	TypeComplaint  = "io.klantreis.touchpoint.complaint.v1"
	TypeSurvey     = "io.klantreis.touchpoint.survey.v1"
	TypeOffboarded = "io.klantreis.customer.offboarded.v1"

	TypeStageChanged        = "io.klantreis.customer.stage_changed.v1"
	TypeSatisfactionChanged = "io.klantreis.customer.satisfaction_changed.v1"
	TypeAtRisk              = "io.klantreis.customer.at_risk.v1"

	TypeAccountStageChanged = "io.klantreis.account.stage_changed.v1"
	TypeAccountDMUGap       = "io.klantreis.account.dmu_gap.v1"
	TypeAccountAtRisk       = "io.klantreis.account.at_risk.v1"
)

// SpecVersion is the only CloudEvents version accepted.
const SpecVersion = "1.0"

// ContentTypeJSON is the only datacontenttype of journey's payloads.
const ContentTypeJSON = "application/json"

// MaxSubjectLen bounds the customer id (the CloudEvents subject) in bytes.
const MaxSubjectLen = 128

type typeInfo struct {
	kind    Kind
	schema  string // file name under schemas/events
	derived bool
}

var types = map[string]typeInfo{
	TypeVisit:               {KindVisit, "visit.v1.json", false},
	TypeQuote:               {KindQuote, "quote.v1.json", false},
	TypeOrder:               {KindOrder, "order.v1.json", false},
	TypeComplaint:           {KindComplaint, "complaint.v1.json", false},
	TypeSurvey:              {KindSurvey, "survey.v1.json", false},
	TypeOffboarded:          {KindOffboarded, "offboarded.v1.json", false},
	TypeStageChanged:        {KindStageChanged, "stage_changed.v1.json", true},
	TypeSatisfactionChanged: {KindSatisfactionChanged, "satisfaction_changed.v1.json", true},
	TypeAtRisk:              {KindAtRisk, "at_risk.v1.json", true},
	TypeAccountStageChanged: {KindAccountStageChanged, "account_stage_changed.v1.json", true},
	TypeAccountDMUGap:       {KindAccountDMUGap, "account_dmu_gap.v1.json", true},
	TypeAccountAtRisk:       {KindAccountAtRisk, "account_at_risk.v1.json", true},
}

var typeByKind = func() map[Kind]string {
	m := make(map[Kind]string, len(types))
	for t, info := range types {
		m[info.kind] = t
	}
	return m
}()

// KindOf returns the kind of a CloudEvents type, or false when the type is
// not one of journey's.
func KindOf(ceType string) (Kind, bool) {
	info, ok := types[ceType]
	return info.kind, ok
}

// TypeOf returns the CloudEvents type of a kind, or "" when unknown.
func TypeOf(k Kind) string { return typeByKind[k] }

// IsFact reports whether events of this type are facts about a customer that
// travel on the touchpoint stream (touchpoints and the offboarded ops event),
// as opposed to derived events.
func IsFact(ceType string) bool {
	info, ok := types[ceType]
	return ok && !info.derived
}

// SchemaURI is the dataschema of a type: the $id of its JSON Schema.
func SchemaURI(ceType string) string {
	info, ok := types[ceType]
	if !ok {
		return ""
	}
	return schemas.BaseURI + info.schema
}

// FactKinds lists the kinds carried on the touchpoint stream, in a fixed order.
func FactKinds() []Kind {
	return []Kind{KindVisit, KindQuote, KindOrder, KindComplaint, KindSurvey, KindOffboarded}
}
