package warehouse

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrNotFound: the customer (or other row) asked for does not exist.
var ErrNotFound = errors.New("warehouse: not found")

// CustomerState is one customer's latest projected state as the API reads
// it: the row the projector writes (customer_state, newest version).
type CustomerState = CustomerStateRow

const customerCols = `customer_id, version, updated_at, CAST(stage AS String), stage_since, account_id,
    first_seen, last_touch, counted_orders, first_visit_at, first_quote_at, first_order_at,
    first_loyal_at, expires_at, offboarded, offboarded_at, nps_score,
    CAST(nps_category AS String), nps_comment, responses, open_complaints,
    last_complaint_at, at_risk, CAST(rules_version AS String)`

type rowScanner interface{ Scan(dest ...any) error }

func scanCustomer(r rowScanner) (CustomerState, error) {
	var c CustomerState
	var offboarded, atRisk uint8
	err := r.Scan(&c.CustomerID, &c.Version, &c.UpdatedAt, &c.Stage, &c.StageSince, &c.AccountID,
		&c.FirstSeen, &c.LastTouch, &c.CountedOrders, &c.FirstVisitAt, &c.FirstQuoteAt, &c.FirstOrderAt,
		&c.FirstLoyalAt, &c.ExpiresAt, &offboarded, &c.OffboardedAt, &c.NPSScore,
		&c.NPSCategory, &c.NPSComment, &c.Responses, &c.OpenComplaints,
		&c.LastComplaintAt, &atRisk, &c.RulesVersion)
	c.Offboarded, c.AtRisk = offboarded != 0, atRisk != 0
	return c, err
}

// Customer returns the latest state of one customer, or ErrNotFound.
func (db *DB) Customer(ctx context.Context, id string) (CustomerState, error) {
	return db.customer(ctx, "", id)
}

func (db *DB) customer(ctx context.Context, suffix, id string) (CustomerState, error) {
	// The newest version by ORDER BY, not FINAL: same row, but FINAL costs
	// a merge of every part's range on each lookup (several times slower on
	// 18.16 in the API benchmark).
	return queryFirst(ctx, db, "customer", scanCustomer,
		"SELECT "+customerCols+" FROM customer_state"+suffix+" WHERE customer_id = ? ORDER BY version DESC LIMIT 1", id)
}

// CustomerFilter selects customers for [DB.Customers]. Empty fields do not
// filter. After is the keyset cursor: the last customer id of the previous
// page.
type CustomerFilter struct {
	Stage   string
	AtRisk  *bool
	Account string
	After   string
	// Limit bounds the page (required, > 0).
	Limit int
}

// Customers lists customers in customer id order, filtered, one page.
func (db *DB) Customers(ctx context.Context, f CustomerFilter) ([]CustomerState, error) {
	return db.customers(ctx, "", f)
}

func (db *DB) customers(ctx context.Context, suffix string, f CustomerFilter) ([]CustomerState, error) {
	if f.Limit <= 0 {
		return nil, fmt.Errorf("%w: customers: limit must be > 0", ErrConfig)
	}
	// The WHERE clauses are constants; only their values are bound.
	where := []string{"customer_id > ?"}
	args := []any{f.After}
	if f.Stage != "" {
		where = append(where, "stage = ?")
		args = append(args, f.Stage)
	}
	if f.AtRisk != nil {
		where = append(where, "at_risk = ?")
		args = append(args, boolU8(*f.AtRisk))
	}
	if f.Account != "" {
		where = append(where, "account_id = ?")
		args = append(args, f.Account)
	}
	args = append(args, f.Limit)
	q := "SELECT " + customerCols + " FROM customer_state" + suffix + " FINAL WHERE " + strings.Join(where, " AND ") +
		" ORDER BY customer_id LIMIT ?"
	return queryRows(ctx, db, "customers", scanCustomer, q, args...)
}

// Transition is one valid stage change of a customer: the explanation.
type Transition struct {
	Idx           uint32
	From, To      string
	At            time.Time
	Reason        string
	CauseEventIDs []string
	RulesVersion  string
}

// Transitions returns the valid stage transitions of a customer in order;
// empty when there are none. It reads every version of the customer's rows
// and keeps the newest per idx, dropping those marked invalid: what FINAL
// and valid = 1 give, without FINAL's per-query merge.
func (db *DB) Transitions(ctx context.Context, id string) ([]Transition, error) {
	return db.transitions(ctx, "", id)
}

func (db *DB) transitions(ctx context.Context, suffix, id string) ([]Transition, error) {
	rows, err := db.Conn.Query(ctx, `SELECT idx, version, valid, CAST(from_stage AS String), CAST(to_stage AS String), at,
    CAST(reason AS String), cause_event_ids, CAST(rules_version AS String)
FROM stage_transitions`+suffix+` WHERE customer_id = ? ORDER BY idx, version`, id)
	if err != nil {
		return nil, fmt.Errorf("warehouse: transitions: %w", err)
	}
	defer rows.Close()
	var out []Transition
	var valid []bool
	for rows.Next() {
		var t Transition
		var version uint64
		var ok uint8
		if err := rows.Scan(&t.Idx, &version, &ok, &t.From, &t.To, &t.At, &t.Reason, &t.CauseEventIDs, &t.RulesVersion); err != nil {
			return nil, fmt.Errorf("warehouse: transitions: %w", err)
		}
		if n := len(out); n > 0 && out[n-1].Idx == t.Idx {
			// A newer version of the same index replaces the older.
			out[n-1], valid[n-1] = t, ok == 1
			continue
		}
		out = append(out, t)
		valid = append(valid, ok == 1)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("warehouse: transitions: %w", err)
	}
	kept := out[:0]
	for i, t := range out {
		if valid[i] {
			kept = append(kept, t)
		}
	}
	return kept, nil
}
