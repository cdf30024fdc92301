package dsar

import (
	"context"
	"errors"
	"time"

	"github.com/klantreis/journey/pkg/warehouse"
)

// Warehouse is what the document reads from ClickHouse; *warehouse.DB
// implements it.
type Warehouse interface {
	ExportTouchpoints(ctx context.Context, customerID string, fn func(warehouse.ExportedTouchpoint) error) error
	ExportDeadLetters(ctx context.Context, customerID, key string, fn func(warehouse.ExportedDeadLetter) error) error
	ExportResponses(ctx context.Context, customerID string, fn func(warehouse.ResponseRow) error) error
	ExportConsent(ctx context.Context, customerID string, fn func(warehouse.ExportedTouchpoint) error) error
	ExportSuperseded(ctx context.Context, customerID string, fn func(warehouse.ExportedTouchpoint) error) error
	Customer(ctx context.Context, id string) (warehouse.CustomerState, error)
	Transitions(ctx context.Context, id string) ([]warehouse.Transition, error)
}

// Section names, in the order [WarehouseSections] returns them.
const (
	SectionTouchpoints  = "touchpoints"
	SectionSuperseded   = "superseded_touchpoints"
	SectionDeadLetters  = "dead_letters"
	SectionState        = "state"
	SectionStageHistory = "stage_history"
	SectionResponses    = "satisfaction_responses"
	SectionConsent      = "consent"
	// SectionProjectorState is the projector's own record (journeyctl
	// only: the API has no NATS access).
	SectionProjectorState = "projector_state"
)

// WarehouseSections are the sections every store in ClickHouse gives:
// touchpoints (current revisions), the versions corrections superseded,
// dead letters, the projected state, the
// stage history with its explanations, survey answers and consent records.
// key is the customer's subject key (stream.CustomerKey), by which dead
// letters are found.
func WarehouseSections(wh Warehouse, customerID, key string) []Section {
	return []Section{
		{SectionTouchpoints, func(ctx context.Context, emit func(any) error) error {
			return wh.ExportTouchpoints(ctx, customerID, func(t warehouse.ExportedTouchpoint) error { return emit(t) })
		}},
		{SectionSuperseded, func(ctx context.Context, emit func(any) error) error {
			return wh.ExportSuperseded(ctx, customerID, func(t warehouse.ExportedTouchpoint) error { return emit(t) })
		}},
		{SectionDeadLetters, func(ctx context.Context, emit func(any) error) error {
			return wh.ExportDeadLetters(ctx, customerID, key, func(d warehouse.ExportedDeadLetter) error { return emit(d) })
		}},
		{SectionState, func(ctx context.Context, emit func(any) error) error {
			c, err := wh.Customer(ctx, customerID)
			if errors.Is(err, warehouse.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			return emit(stateOf(c))
		}},
		{SectionStageHistory, func(ctx context.Context, emit func(any) error) error {
			ts, err := wh.Transitions(ctx, customerID)
			if err != nil {
				return err
			}
			for _, t := range ts {
				if err := emit(transitionOf(t)); err != nil {
					return err
				}
			}
			return nil
		}},
		{SectionResponses, func(ctx context.Context, emit func(any) error) error {
			return wh.ExportResponses(ctx, customerID, func(r warehouse.ResponseRow) error { return emit(responseOf(r)) })
		}},
		{SectionConsent, func(ctx context.Context, emit func(any) error) error {
			return wh.ExportConsent(ctx, customerID, func(t warehouse.ExportedTouchpoint) error {
				return emit(Consent{Source: t.Source, ID: t.ID, Time: t.Time, Revision: t.Revision, Consent: t.Extensions[warehouse.ConsentExtension]})
			})
		}},
	}
}

// State is the customer's projected state (customer_state, newest version).
type State struct {
	Stage           string     `json:"stage"`
	StageSince      time.Time  `json:"stage_since"`
	AccountID       string     `json:"account_id"`
	FirstSeen       time.Time  `json:"first_seen"`
	LastTouch       time.Time  `json:"last_touch"`
	CountedOrders   uint32     `json:"counted_orders"`
	FirstVisitAt    *time.Time `json:"first_visit_at"`
	FirstQuoteAt    *time.Time `json:"first_quote_at"`
	FirstOrderAt    *time.Time `json:"first_order_at"`
	FirstLoyalAt    *time.Time `json:"first_loyal_at"`
	ExpiresAt       *time.Time `json:"expires_at"`
	Offboarded      bool       `json:"offboarded"`
	OffboardedAt    *time.Time `json:"offboarded_at"`
	NPSScore        *uint8     `json:"nps_score"`
	NPSCategory     string     `json:"nps_category"`
	NPSComment      string     `json:"nps_comment"`
	Responses       uint32     `json:"responses"`
	OpenComplaints  uint32     `json:"open_complaints"`
	LastComplaintAt *time.Time `json:"last_complaint_at"`
	AtRisk          bool       `json:"at_risk"`
	RulesVersion    string     `json:"rules_version"`
	Version         uint64     `json:"version"`
	UpdatedAt       time.Time  `json:"updated_at"`
}

func stateOf(c warehouse.CustomerState) State {
	return State{
		Stage: c.Stage, StageSince: c.StageSince.UTC(), AccountID: c.AccountID, FirstSeen: c.FirstSeen.UTC(),
		LastTouch: c.LastTouch.UTC(), CountedOrders: c.CountedOrders, FirstVisitAt: utc(c.FirstVisitAt),
		FirstQuoteAt: utc(c.FirstQuoteAt), FirstOrderAt: utc(c.FirstOrderAt), FirstLoyalAt: utc(c.FirstLoyalAt),
		ExpiresAt: utc(c.ExpiresAt), Offboarded: c.Offboarded, OffboardedAt: utc(c.OffboardedAt),
		NPSScore: c.NPSScore, NPSCategory: c.NPSCategory, NPSComment: c.NPSComment, Responses: c.Responses,
		OpenComplaints: c.OpenComplaints, LastComplaintAt: utc(c.LastComplaintAt), AtRisk: c.AtRisk,
		RulesVersion: c.RulesVersion, Version: c.Version, UpdatedAt: c.UpdatedAt.UTC(),
	}
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// Transition is one step of the stage history with the rule that fired,
// the events that caused it and a sentence that explains it.
type Transition struct {
	From          string    `json:"from"`
	To            string    `json:"to"`
	At            time.Time `json:"at"`
	Reason        string    `json:"reason"`
	Explanation   string    `json:"explanation"`
	CauseEventIDs []string  `json:"cause_event_ids"`
	RulesVersion  string    `json:"rules_version"`
}

// explanations say in words what each rule (pkg/journey's Reason) means.
var explanations = map[string]string{
	"first_touchpoint": "the first touchpoint journey received for you",
	"first_order":      "your first order that was not cancelled",
	"repeat_orders":    "enough orders within the loyalty window",
	"inactive":         "no counted order within the inactivity period after your last one",
	"offboarded":       "the relationship was ended (offboarding)",
	"reactivated":      "a new order after you had become an ex-customer",
	"order_cancelled":  "a cancellation changed what your orders support",
}

func transitionOf(t warehouse.Transition) Transition {
	ids := t.CauseEventIDs
	if ids == nil {
		ids = []string{}
	}
	ex, ok := explanations[t.Reason]
	if !ok {
		ex = "rule " + t.Reason
	}
	return Transition{From: t.From, To: t.To, At: t.At.UTC(), Reason: t.Reason, Explanation: ex,
		CauseEventIDs: ids, RulesVersion: t.RulesVersion}
}

// Response is one survey answer as satisfaction_responses holds it.
type Response struct {
	Source    string    `json:"source"`
	EventID   string    `json:"event_id"`
	SurveyID  string    `json:"survey_id"`
	ContactID string    `json:"contact_id"`
	AccountID string    `json:"account_id"`
	Time      time.Time `json:"time"`
	Score     uint8     `json:"score"`
	Category  string    `json:"category"`
	Comment   string    `json:"comment"`
	Stage     string    `json:"stage"`
}

func responseOf(r warehouse.ResponseRow) Response {
	return Response{Source: r.Source, EventID: r.EventID, SurveyID: r.SurveyID, ContactID: r.ContactID,
		AccountID: r.AccountID, Time: r.Time.UTC(), Score: r.Score, Category: r.Category, Comment: r.Comment, Stage: r.Stage}
}

// Consent is one consent answer as it arrived: the touchpoint that carried
// it and the value of its consent extension ("marketing:granted,…").
type Consent struct {
	Source   string    `json:"source"`
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	Revision uint32    `json:"revision"`
	Consent  string    `json:"consent"`
}
