package warehouse

import (
	"context"
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
	return queryRows(ctx, db, "ops audit", func(r rowScanner) (OpsAction, error) {
		var a OpsAction
		err := r.Scan(&a.At, &a.EventID, &a.Actor, &a.Action, &a.Selection, &a.Counts, &a.Outcome, &a.Error)
		return a, err
	}, `SELECT at, event_id, actor, toString(action), selection, counts, toString(outcome), error
 FROM ops_audit`+where+` ORDER BY at DESC LIMIT ?`, args...)
}

// likePrefix is a LIKE pattern matching strings that start with p
// (startsWith is not in 18.16).
func likePrefix(p string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(p) + "%"
}
