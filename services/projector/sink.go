package projector

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/projection"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
)

// errNoWarehouse: ClickHouse has not been reached yet; the batch waits.
var errNoWarehouse = errors.New("projector: clickhouse not connected yet")

// warehouseSink writes the partitions' updates to ClickHouse by group
// commit: one goroutine inserts, and every write that arrives while an
// insert is in flight joins the next one. Each partition still waits for
// its own rows to be stored (the state is written after them), but
// ClickHouse sees a few large inserts per second instead of three per
// partition batch, which keeps its part count healthy.
//
// The connection is opened in the background (see Run), so the projector
// starts and keeps its consumers while ClickHouse is down; writes fail with
// errNoWarehouse meanwhile and the batches are retried.
type warehouseSink struct {
	mu   sync.RWMutex
	db   *warehouse.DB
	reqs chan *sinkReq
	// maxRows bounds the customer rows of one insert.
	maxRows int
}

type sinkReq struct {
	states      []warehouse.CustomerStateRow
	transitions []warehouse.TransitionRow
	responses   []warehouse.ResponseRow
	done        chan error
}

func newWarehouseSink(maxRows int) *warehouseSink {
	return &warehouseSink{reqs: make(chan *sinkReq, 64), maxRows: maxRows}
}

func (w *warehouseSink) set(db *warehouse.DB) {
	w.mu.Lock()
	w.db = db
	w.mu.Unlock()
}

func (w *warehouseSink) get() *warehouse.DB {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.db
}

func (w *warehouseSink) Write(ctx context.Context, updates []projection.Update) error {
	if w.get() == nil {
		return errNoWarehouse
	}
	req := &sinkReq{done: make(chan error, 1)}
	req.states, req.transitions, req.responses = rows(updates)
	select {
	case w.reqs <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		// The insert may still happen; it is idempotent.
		return ctx.Err()
	}
}

// run inserts until ctx ends. Writes still queued then fail with the
// context's error and are retried by their partitions (or redelivered).
func (w *warehouseSink) run(ctx context.Context) {
	for {
		var first *sinkReq
		select {
		case first = <-w.reqs:
		case <-ctx.Done():
			return
		}
		group := []*sinkReq{first}
		n := len(first.states)
	more:
		for n < w.maxRows {
			select {
			case r := <-w.reqs:
				group = append(group, r)
				n += len(r.states)
			default:
				break more
			}
		}
		var states []warehouse.CustomerStateRow
		var transitions []warehouse.TransitionRow
		var responses []warehouse.ResponseRow
		for _, r := range group {
			states = append(states, r.states...)
			transitions = append(transitions, r.transitions...)
			responses = append(responses, r.responses...)
		}
		var err error
		if db := w.get(); db == nil {
			err = errNoWarehouse
		} else {
			ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), attemptTimeout)
			err = db.WriteProjection(ictx, states, transitions, responses)
			cancel()
		}
		for _, r := range group {
			r.done <- err
		}
	}
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
