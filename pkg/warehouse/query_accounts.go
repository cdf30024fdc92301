package warehouse

import (
	"context"
	"fmt"
	"strings"
)

// AccountState is one account's latest projected state as the API reads
// it: the row the projector writes (account_state, newest version). View
// is empty in lists.
type AccountState = AccountStateRow

const accountCols = `account_id, version, updated_at, CAST(stage AS String), stage_since, at_risk, at_risk_reasons,
    gap, open_quotes, coverage, uncovered, members, former_members, nps, respondents, promoters, passives,
    detractors, open_complaints, last_touch, next_change, CAST(rules_version AS String)`

func scanAccount(r rowScanner, view *string) (AccountState, error) {
	var a AccountState
	var risk, gap uint8
	dest := []any{&a.AccountID, &a.Version, &a.UpdatedAt, &a.Stage, &a.StageSince, &risk, &a.AtRiskReasons,
		&gap, &a.OpenQuotes, &a.Coverage, &a.Uncovered, &a.Members, &a.FormerMembers, &a.NPS, &a.Respondents,
		&a.Promoters, &a.Passives, &a.Detractors, &a.OpenComplaints, &a.LastTouch, &a.NextChange, &a.RulesVersion}
	if view != nil {
		dest = append(dest, view)
	}
	err := r.Scan(dest...)
	a.AtRisk, a.Gap = risk != 0, gap != 0
	if view != nil {
		a.View = *view
	}
	return a, err
}

// Account returns the latest state of one account with its view JSON, or
// ErrNotFound.
func (db *DB) Account(ctx context.Context, id string) (AccountState, error) {
	withView := func(r rowScanner) (AccountState, error) {
		var view string
		return scanAccount(r, &view)
	}
	return queryFirst(ctx, db, "account", withView,
		"SELECT "+accountCols+", view FROM account_state WHERE account_id = ? ORDER BY version DESC LIMIT 1", id)
}

// AccountFilter selects accounts for [DB.Accounts]; nil and empty fields do
// not filter. After is the keyset cursor (the last account id of the
// previous page); Limit is required.
type AccountFilter struct {
	Stage  string
	AtRisk *bool
	Gap    *bool
	After  string
	Limit  int
}

// Accounts lists accounts in account id order, filtered, one page.
func (db *DB) Accounts(ctx context.Context, f AccountFilter) ([]AccountState, error) {
	if f.Limit <= 0 {
		return nil, fmt.Errorf("%w: accounts: limit must be > 0", ErrConfig)
	}
	where := []string{"account_id > ?"}
	args := []any{f.After}
	if f.Stage != "" {
		where = append(where, "stage = ?")
		args = append(args, f.Stage)
	}
	for _, b := range []struct {
		col string
		v   *bool
	}{{"at_risk", f.AtRisk}, {"gap", f.Gap}} {
		if b.v != nil {
			where = append(where, b.col+" = ?")
			args = append(args, boolU8(*b.v))
		}
	}
	args = append(args, f.Limit)
	q := "SELECT " + accountCols + " FROM account_state FINAL WHERE " + strings.Join(where, " AND ") + " ORDER BY account_id LIMIT ?"
	listed := func(r rowScanner) (AccountState, error) { return scanAccount(r, nil) }
	return queryRows(ctx, db, "accounts", listed, q, args...)
}

// AccountStageCount is the number of accounts in a stage now.
type AccountStageCount struct {
	Stage    string
	Accounts uint64
	AtRisk   uint64
	Gaps     uint64
}

// AccountStageDistribution counts accounts per current stage.
func (db *DB) AccountStageDistribution(ctx context.Context) ([]AccountStageCount, error) {
	return queryRows(ctx, db, "account stages", func(r rowScanner) (AccountStageCount, error) {
		var c AccountStageCount
		err := r.Scan(&c.Stage, &c.Accounts, &c.AtRisk, &c.Gaps)
		return c, err
	}, "SELECT stage, toUInt64(accounts), toUInt64(at_risk), toUInt64(gaps) FROM account_stage_distribution ORDER BY stage")
}

// AccountTimeline returns the latest limit touchpoints that named the
// account, in time order. It scans events by account_id (the table is
// ordered by kind and customer), which suits a dashboard page, not a bulk
// export.
func (db *DB) AccountTimeline(ctx context.Context, id string, limit int) ([]Touchpoint, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("%w: account timeline: limit must be > 0", ErrConfig)
	}
	rows, err := db.Conn.Query(ctx, touchpointSelect+`
WHERE account_id = ?
ORDER BY time_ms DESC, stream_seq DESC
LIMIT ?`, id, limit)
	if err != nil {
		return nil, fmt.Errorf("warehouse: account timeline: %w", err)
	}
	out, err := scanTouchpoints(rows, "account timeline")
	if err != nil {
		return nil, err
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}
