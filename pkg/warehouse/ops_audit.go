package warehouse

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// OpsAction is one row of the ops audit trail (ops_audit): a journeyctl
// action, who ran it, on what and with which counts (JSON).
type OpsAction struct {
	At        time.Time `json:"at"`
	EventID   string    `json:"event_id"`
	Actor     string    `json:"actor"`
	Action    string    `json:"action"`
	Selection string    `json:"selection"`
	Counts    string    `json:"counts"`
	Outcome   string    `json:"outcome"`
	Error     string    `json:"error,omitempty"`
}

// OpsActions returns the newest audited actions, newest first, at most
// limit; with prefixes only the actions that start with one of them
// (e.g. "rebuild.", "rederive.").
func (db *DB) OpsActions(ctx context.Context, limit int, prefixes ...string) ([]OpsAction, error) {
	where, args := "", []any{}
	for i, p := range prefixes {
		if i == 0 {
			where = " WHERE "
		} else {
			where += " OR "
		}
		where += "action LIKE ?"
		args = append(args, likePrefix(p))
	}
	args = append(args, limit)
	rows, err := db.Conn.Query(ctx, `SELECT at, event_id, actor, toString(action), selection, counts, toString(outcome), error
 FROM ops_audit`+where+` ORDER BY at DESC LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("warehouse: ops audit: %w", err)
	}
	defer rows.Close()
	var out []OpsAction
	for rows.Next() {
		var a OpsAction
		if err := rows.Scan(&a.At, &a.EventID, &a.Actor, &a.Action, &a.Selection, &a.Counts, &a.Outcome, &a.Error); err != nil {
			return nil, fmt.Errorf("warehouse: ops audit: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// likePrefix is a LIKE pattern matching strings that start with p
// (startsWith is not in 18.16).
func likePrefix(p string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(p) + "%"
}
