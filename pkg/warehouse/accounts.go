package warehouse

import (
	"context"
	"errors"
	"time"
)

// AccountStateRow is one version of an account's projected state
// (account_state).
type AccountStateRow struct {
	AccountID      string
	Version        uint64
	UpdatedAt      time.Time
	Stage          string
	StageSince     time.Time
	AtRisk         bool
	AtRiskReasons  []string
	Gap            bool
	OpenQuotes     []string
	Coverage       []string
	Uncovered      []string
	Members        uint32
	FormerMembers  uint32
	NPS            *int16 // nil when no current member answered
	Respondents    uint32
	Promoters      uint32
	Passives       uint32
	Detractors     uint32
	OpenComplaints uint32
	LastTouch      time.Time
	NextChange     *time.Time
	RulesVersion   string
	// View is the JSON of the account's pkg/account.View.
	View string
}

// AccountTransitionRow is one transition of an account's history
// (account_transitions); Valid is false for an index a rewrite removed.
type AccountTransitionRow struct {
	AccountID     string
	Idx           uint32
	Version       uint64
	Valid         bool
	From, To      string
	At            time.Time
	Reason        string
	CauseEventIDs []string
	RulesVersion  string
}

const (
	insertAccountState = `INSERT INTO account_state (account_id, version, updated_at, stage, stage_since, at_risk,
 at_risk_reasons, gap, open_quotes, coverage, uncovered, members, former_members, nps, respondents, promoters,
 passives, detractors, open_complaints, last_touch, next_change, rules_version, view)`
	insertAccountTransitions = `INSERT INTO account_transitions (account_id, idx, version, valid, from_stage, to_stage,
 at, reason, cause_event_ids, rules_version)`
)

// WriteAccounts inserts account states and transitions. Rows are
// idempotent (ReplacingMergeTree by version), so a batch may be written
// again after a failure.
func (db *DB) WriteAccounts(ctx context.Context, states []AccountStateRow, transitions []AccountTransitionRow) error {
	var errs []error
	if len(states) > 0 {
		errs = append(errs, db.insertAccountStates(ctx, states))
	}
	if len(transitions) > 0 {
		errs = append(errs, db.insertAccountTransitions(ctx, transitions))
	}
	return errors.Join(errs...)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (db *DB) insertAccountStates(ctx context.Context, rows []AccountStateRow) error {
	n := len(rows)
	var (
		id, stage, rules, view         = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		version                        = make([]uint64, n)
		updated, since, last           = make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
		next                           = make([]*time.Time, n)
		risk, gap                      = make([]uint8, n), make([]uint8, n)
		reasons, quotes, cov, uncov    = make([][]string, n), make([][]string, n), make([][]string, n), make([][]string, n)
		members, former, resp, open    = make([]uint32, n), make([]uint32, n), make([]uint32, n), make([]uint32, n)
		promoters, passives, detractor = make([]uint32, n), make([]uint32, n), make([]uint32, n)
		nps                            = make([]*int16, n)
	)
	for i := range rows {
		r := &rows[i]
		id[i], version[i], updated[i], stage[i], since[i] = r.AccountID, r.Version, r.UpdatedAt.UTC(), r.Stage, r.StageSince.UTC()
		risk[i], reasons[i], gap[i], quotes[i] = boolU8(r.AtRisk), nonNil(r.AtRiskReasons), boolU8(r.Gap), nonNil(r.OpenQuotes)
		cov[i], uncov[i], members[i], former[i] = nonNil(r.Coverage), nonNil(r.Uncovered), r.Members, r.FormerMembers
		nps[i], resp[i], promoters[i], passives[i], detractor[i] = r.NPS, r.Respondents, r.Promoters, r.Passives, r.Detractors
		open[i], last[i], rules[i], view[i] = r.OpenComplaints, r.LastTouch.UTC(), r.RulesVersion, r.View
		if r.NextChange != nil {
			t := r.NextChange.UTC()
			next[i] = &t
		}
	}
	return db.sendColumns(ctx, insertAccountState, []any{id, version, updated, stage, since, risk, reasons, gap, quotes,
		cov, uncov, members, former, nps, resp, promoters, passives, detractor, open, last, next, rules, view})
}

func (db *DB) insertAccountTransitions(ctx context.Context, rows []AccountTransitionRow) error {
	same := make([]TransitionRow, len(rows))
	for i, r := range rows {
		same[i] = TransitionRow{CustomerID: r.AccountID, Idx: r.Idx, Version: r.Version, Valid: r.Valid, From: r.From, To: r.To,
			At: r.At, Reason: r.Reason, CauseEventIDs: r.CauseEventIDs, RulesVersion: r.RulesVersion}
	}
	return db.sendColumns(ctx, insertAccountTransitions, transitionColumns(same))
}
