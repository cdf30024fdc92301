package warehouse

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// CustomerStateRow is one row of customer_state
// (schemas/clickhouse/0003_customer_state.sql): a customer's projected
// state at a version. Nil times are NULL (milestone not reached).
type CustomerStateRow struct {
	CustomerID      string
	Version         uint64
	UpdatedAt       time.Time
	Stage           string
	StageSince      time.Time
	AccountID       string
	FirstSeen       time.Time
	LastTouch       time.Time
	CountedOrders   uint32
	FirstVisitAt    *time.Time
	FirstQuoteAt    *time.Time
	FirstOrderAt    *time.Time
	FirstLoyalAt    *time.Time
	ExpiresAt       *time.Time
	Offboarded      bool
	OffboardedAt    *time.Time
	NPSScore        *uint8
	NPSCategory     string
	NPSComment      string
	Responses       uint32
	OpenComplaints  uint32
	LastComplaintAt *time.Time
	AtRisk          bool
	RulesVersion    string
}

// TransitionRow is one row of stage_transitions: transition Idx of a
// customer at a version. Valid false marks an index a rewritten history no
// longer has (its other columns are then empty).
type TransitionRow struct {
	CustomerID    string
	Idx           uint32
	Version       uint64
	Valid         bool
	From, To      string
	At            time.Time
	Reason        string
	CauseEventIDs []string
	RulesVersion  string
}

// ResponseRow is one row of satisfaction_responses: a survey answer with
// its NPS category and the customer's stage at its time.
type ResponseRow struct {
	CustomerID string
	ContactID  string
	AccountID  string
	Source     string
	EventID    string
	SurveyID   string
	Time       time.Time
	Score      uint8
	Category   string
	Comment    string
	Stage      string
	StreamSeq  uint64
}

const (
	insertCustomerState = `INSERT INTO customer_state (customer_id, version, updated_at, stage, stage_since, account_id,
 first_seen, last_touch, counted_orders, first_visit_at, first_quote_at, first_order_at, first_loyal_at, expires_at,
 offboarded, offboarded_at, nps_score, nps_category, nps_comment, responses, open_complaints, last_complaint_at,
 at_risk, rules_version)`
	insertTransitions = `INSERT INTO stage_transitions (customer_id, idx, version, valid, from_stage, to_stage, at, reason,
 cause_event_ids, rules_version)`
	insertResponses = `INSERT INTO satisfaction_responses (customer_id, contact_id, account_id, source, event_id, survey_id,
 time, score, category, comment, stage, stream_seq)`
)

// WriteProjection inserts a batch of projected states, transitions and
// responses, one INSERT per table (each atomic on the server). The tables
// are ReplacingMergeTrees keyed so that writing the same rows again (a
// replay) replaces them: it is idempotent. Read with FINAL.
//
// A failure leaves some tables written and others not; the caller writes
// the whole batch again. A row with a time the columns cannot hold (see
// [DB.CheckEventRow]) and errors from the append phase wrap [ErrRejected];
// nothing is written then.
func (db *DB) WriteProjection(ctx context.Context, states []CustomerStateRow, transitions []TransitionRow, responses []ResponseRow) error {
	return db.writeProjection(ctx, "", states, transitions, responses)
}

// writeProjection is WriteProjection into the tables whose names end in
// suffix (a rules version's, see [Variant]; "" for the live ones).
func (db *DB) writeProjection(ctx context.Context, suffix string, states []CustomerStateRow, transitions []TransitionRow, responses []ResponseRow) error {
	if err := db.checkProjection(states, transitions, responses); err != nil {
		return err
	}
	// The three inserts are independent; run side by side, a batch costs
	// one insert's latency instead of three.
	var wg sync.WaitGroup
	errs := make([]error, 3)
	run := func(i int, n int, f func() error) {
		if n == 0 {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f()
		}()
	}
	run(0, len(states), func() error { return db.insertStates(ctx, suffix, states) })
	run(1, len(transitions), func() error { return db.insertTransitions(ctx, suffix, transitions) })
	run(2, len(responses), func() error { return db.insertResponses(ctx, suffix, responses) })
	wg.Wait()
	return errors.Join(errs...)
}

// checkProjection refuses a batch holding a time the columns cannot hold:
// the driver would wrap it silently. A zero time is allowed: it stands for
// "not yet" (a transition withdrawn, a customer never touched).
func (db *DB) checkProjection(states []CustomerStateRow, transitions []TransitionRow, responses []ResponseRow) error {
	check := func(what, id string, ts ...time.Time) error {
		for _, t := range ts {
			if t.IsZero() {
				continue
			}
			if err := db.checkTime(t); err != nil {
				return fmt.Errorf("%s of customer %q: %w", what, id, err)
			}
		}
		return nil
	}
	opt := func(p *time.Time) time.Time {
		if p == nil {
			return time.Time{}
		}
		return *p
	}
	for i := range states {
		r := &states[i]
		if err := check("state", r.CustomerID, r.UpdatedAt, r.StageSince, r.FirstSeen, r.LastTouch, opt(r.FirstVisitAt), opt(r.FirstQuoteAt),
			opt(r.FirstOrderAt), opt(r.FirstLoyalAt), opt(r.ExpiresAt), opt(r.OffboardedAt), opt(r.LastComplaintAt)); err != nil {
			return err
		}
	}
	for i := range transitions {
		if err := check("transition", transitions[i].CustomerID, transitions[i].At); err != nil {
			return err
		}
	}
	for i := range responses {
		if err := check("survey response", responses[i].CustomerID, responses[i].Time); err != nil {
			return err
		}
	}
	return nil
}

func boolU8(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func (db *DB) insertStates(ctx context.Context, suffix string, rows []CustomerStateRow) error {
	n := len(rows)
	var (
		id, stage, acct, cat, comment, rules       = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		version                                    = make([]uint64, n)
		updated, since, first, last                = make([]time.Time, n), make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
		counted, responses, open                   = make([]uint32, n), make([]uint32, n), make([]uint32, n)
		visit, quote, order, loyal, expires, offAt = make([]*time.Time, n), make([]*time.Time, n), make([]*time.Time, n), make([]*time.Time, n), make([]*time.Time, n), make([]*time.Time, n)
		lastComplaint                              = make([]*time.Time, n)
		off, risk                                  = make([]uint8, n), make([]uint8, n)
		score                                      = make([]*uint8, n)
	)
	for i := range rows {
		r := &rows[i]
		id[i], version[i], updated[i], stage[i], since[i], acct[i] = r.CustomerID, r.Version, r.UpdatedAt.UTC(), r.Stage, r.StageSince.UTC(), r.AccountID
		first[i], last[i], counted[i] = r.FirstSeen.UTC(), r.LastTouch.UTC(), r.CountedOrders
		visit[i], quote[i], order[i], loyal[i], expires[i] = r.FirstVisitAt, r.FirstQuoteAt, r.FirstOrderAt, r.FirstLoyalAt, r.ExpiresAt
		off[i], offAt[i], score[i], cat[i], comment[i] = boolU8(r.Offboarded), r.OffboardedAt, r.NPSScore, r.NPSCategory, r.NPSComment
		responses[i], open[i], lastComplaint[i], risk[i], rules[i] = r.Responses, r.OpenComplaints, r.LastComplaintAt, boolU8(r.AtRisk), r.RulesVersion
	}
	return db.sendColumns(ctx, renameTable(insertCustomerState, "customer_state", suffix), []any{id, version, updated, stage, since, acct, first, last, counted,
		visit, quote, order, loyal, expires, off, offAt, score, cat, comment, responses, open, lastComplaint, risk, rules})
}

func (db *DB) insertTransitions(ctx context.Context, suffix string, rows []TransitionRow) error {
	return db.sendColumns(ctx, renameTable(insertTransitions, "stage_transitions", suffix), transitionColumns(rows))
}

// transitionColumns lays rows out as the columns of stage_transitions and
// account_transitions, which share their shape: (owner id, idx, version,
// valid, from, to, at, reason, causes, rules).
func transitionColumns(rows []TransitionRow) []any {
	n := len(rows)
	var (
		id, from, to, reason, rules = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		idx                         = make([]uint32, n)
		version                     = make([]uint64, n)
		valid                       = make([]uint8, n)
		at                          = make([]time.Time, n)
		causes                      = make([][]string, n)
	)
	for i := range rows {
		r := &rows[i]
		id[i], idx[i], version[i], valid[i] = r.CustomerID, r.Idx, r.Version, boolU8(r.Valid)
		from[i], to[i], at[i], reason[i], rules[i] = r.From, r.To, r.At.UTC(), r.Reason, r.RulesVersion
		causes[i] = nonNil(r.CauseEventIDs)
	}
	return []any{id, idx, version, valid, from, to, at, reason, causes, rules}
}

func (db *DB) insertResponses(ctx context.Context, suffix string, rows []ResponseRow) error {
	n := len(rows)
	var (
		id, contact, acct, source, event, survey, cat, comment, stage = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		tm                                                            = make([]time.Time, n)
		score                                                         = make([]uint8, n)
		seq                                                           = make([]uint64, n)
	)
	for i := range rows {
		r := &rows[i]
		id[i], contact[i], acct[i], source[i], event[i], survey[i] = r.CustomerID, r.ContactID, r.AccountID, r.Source, r.EventID, r.SurveyID
		tm[i], score[i], cat[i], comment[i], stage[i], seq[i] = r.Time.UTC(), r.Score, r.Category, r.Comment, r.Stage, r.StreamSeq
	}
	return db.sendColumns(ctx, renameTable(insertResponses, "satisfaction_responses", suffix), []any{id, contact, acct, source, event, survey, tm, score, cat, comment, stage, seq})
}

// ProjectedCustomer is the part of customer_state a test or tool compares
// with the projector's own store.
type ProjectedCustomer struct {
	CustomerID     string
	Version        uint64
	Stage          string
	StageSince     time.Time
	CountedOrders  uint32
	NPSCategory    string
	Responses      uint32
	OpenComplaints uint32
	AtRisk         bool
}

// ProjectedCustomers reads every customer's latest row (FINAL), ordered by
// id, at most limit rows.
func (db *DB) ProjectedCustomers(ctx context.Context, limit int) ([]ProjectedCustomer, error) {
	return queryRows(ctx, db, "projected customers", func(r rowScanner) (ProjectedCustomer, error) {
		var c ProjectedCustomer
		var risk uint8
		err := r.Scan(&c.CustomerID, &c.Version, &c.Stage, &c.StageSince, &c.CountedOrders, &c.NPSCategory, &c.Responses, &c.OpenComplaints, &risk)
		c.AtRisk = risk == 1
		return c, err
	}, `SELECT customer_id, version, CAST(stage AS String), stage_since, counted_orders,
 CAST(nps_category AS String), responses, open_complaints, at_risk FROM customer_state FINAL ORDER BY customer_id LIMIT ?`, limit)
}
