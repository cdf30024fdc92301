package projector

import (
	"errors"
	"time"

	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/projection"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
)

// errNoWarehouse: ClickHouse has not been reached yet; rows wait.
var errNoWarehouse = errors.New("projector: clickhouse not connected yet")

// warehouseConn is the ClickHouse connection once it is open
// (*warehouse.Connection): nil until then, so that the projector starts
// and keeps projecting while ClickHouse is down.
type warehouseConn interface {
	DB() *warehouse.DB
}

func ptr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// rows maps updates to the three tables' rows.
func rows(updates []projection.Update) ([]warehouse.CustomerStateRow, []warehouse.TransitionRow, []warehouse.ResponseRow) {
	states := make([]warehouse.CustomerStateRow, 0, len(updates))
	var transitions []warehouse.TransitionRow
	var responses []warehouse.ResponseRow
	for i := range updates {
		u := &updates[i]
		st := u.Record.State
		version := u.Record.Version()
		states = append(states, StateRow(st, version, u.At))
		h := st.History
		if from := u.Change.HistoryFrom; from >= 0 {
			for j := from; j < len(h); j++ {
				t := &h[j]
				transitions = append(transitions, warehouse.TransitionRow{CustomerID: st.CustomerID, Idx: uint32(j), Version: version,
					Valid: true, From: string(t.From), To: string(t.To), At: t.At, Reason: string(t.Reason),
					CauseEventIDs: t.Causes, RulesVersion: t.RulesVersion})
			}
			for j := len(h); j < u.Change.OldHistoryLen; j++ {
				transitions = append(transitions, warehouse.TransitionRow{CustomerID: st.CustomerID, Idx: uint32(j), Version: version})
			}
		}
		for k := range u.Msgs {
			m := &u.Msgs[k]
			if m.Event.Kind != touchpoint.KindSurvey {
				continue
			}
			e := &m.Event
			responses = append(responses, warehouse.ResponseRow{CustomerID: st.CustomerID, ContactID: e.ContactID, AccountID: e.AccountID,
				Source: e.Source, EventID: e.ID, SurveyID: m.SurveyID, Time: e.Time, Score: uint8(e.Score),
				Category: string(journey.CategoryOf(e.Score)), Comment: e.Comment, Stage: string(stageAt(h, e.Time)), StreamSeq: m.Seq})
		}
	}
	return states, transitions, responses
}

// stageAt is the stage the history gives at t.
func stageAt(h []journey.Transition, t time.Time) journey.Stage {
	st := journey.StageNone
	for i := range h {
		if h[i].At.After(t) {
			break
		}
		st = h[i].To
	}
	return st
}

// StateRow maps a customer's state to its customer_state row.
func StateRow(st *journey.State, version uint64, now time.Time) warehouse.CustomerStateRow {
	sat := st.Satisfaction()
	ms := st.Milestones()
	off, offAt := st.Offboarded()
	r := warehouse.CustomerStateRow{
		CustomerID:      st.CustomerID,
		Version:         version,
		UpdatedAt:       now,
		Stage:           string(st.Stage()),
		StageSince:      st.StageSince(),
		AccountID:       st.AccountID,
		LastTouch:       st.LastTouch,
		CountedOrders:   uint32(st.CountedOrders()),
		FirstVisitAt:    ptr(ms.FirstVisit),
		FirstQuoteAt:    ptr(ms.FirstQuote),
		FirstOrderAt:    ptr(ms.FirstOrder),
		FirstLoyalAt:    ptr(ms.FirstLoyal),
		ExpiresAt:       ptr(st.Expires),
		Offboarded:      off,
		OffboardedAt:    ptr(offAt),
		NPSCategory:     string(sat.Category),
		NPSComment:      sat.Comment,
		Responses:       uint32(sat.Responses),
		OpenComplaints:  uint32(sat.OpenComplaints),
		LastComplaintAt: ptr(sat.LastComplaintAt),
		AtRisk:          sat.AtRisk,
	}
	if st.FirstTouch != nil {
		r.FirstSeen = st.FirstTouch.At
	}
	if sat.Score >= 0 {
		s := uint8(sat.Score)
		r.NPSScore = &s
	}
	if n := len(st.History); n > 0 {
		r.RulesVersion = st.History[n-1].RulesVersion
	}
	return r
}
