package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/klantreis/journey/pkg/audit"
	"github.com/klantreis/journey/pkg/deadletter"
)

// opsActions are the ops actions the API offers beside journeyctl
// (JOURNEY_API_OPS_ACTIONS): the dead letters' list, show, redrive and
// purge, each audited as journeyctl audits it.
type opsActions struct {
	dead  deadletter.Ops
	audit audit.Recorder
	jobs  JobQueue // nil: no /v1/ops/jobs
}

type opsActionsSlot = atomic.Pointer[opsActions]

// SetOpsActions enables /v1/ops/deadletters and /v1/ops/jobs: d acts on
// the dead letters, jobs queues the long actions (replay, rebuild,
// re-derive, rules switch and rollback, retention) for a worker, and rec
// audits what they do. They need an admin's NATS and ClickHouse
// credentials, which a read-only API lacks. jobs may be nil.
func (s *Server) SetOpsActions(d deadletter.Ops, jobs JobQueue, rec audit.Recorder) {
	s.opsAct.Store(&opsActions{dead: d, audit: rec, jobs: jobs})
}

var errNoOpsActions = errors.New("api: ops actions not configured")

func (s *Server) opsActions() (*opsActions, error) {
	a := s.opsAct.Load()
	if a == nil {
		return nil, errNoOpsActions
	}
	return a, nil
}

// actorOf names who made the request in the audit trail: the token by the
// first 8 hex digits of its SHA-256 (tokens have no names; the hash names
// one without giving it away), or "api:open" on an API without tokens.
func actorOf(r *http.Request) string {
	tok := tokenOf(r)
	if tok == "" {
		return "api:open"
	}
	sum := sha256.Sum256([]byte(tok))
	return "api:token-" + hex.EncodeToString(sum[:4])
}

// record audits one action under the request's actor; the audit gets its
// own time, so that an action whose request was cancelled is audited too.
func (s *Server) record(r *http.Request, a *opsActions, action string, sel map[string]any, counts map[string]int) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 15*time.Second)
	defer cancel()
	err := a.audit.Record(ctx, audit.Entry{At: s.now().UTC(), Actor: actorOf(r), Action: action, Selection: sel, Counts: counts})
	if err != nil {
		return fmt.Errorf("api: the action was done but its audit failed: %w", err)
	}
	return nil
}

// deadFilterOf reads consumer, class, since and until (RFC 3339).
func deadFilterOf(get func(string) string) (deadletter.Filter, error) {
	f := deadletter.Filter{Consumer: get("consumer"), Class: get("class")}
	for _, p := range []struct {
		name string
		to   *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return f, badParam(p.name, "not an RFC 3339 time: "+v)
			}
			*p.to = t
		}
	}
	return f, nil
}

// listDeadLetters answers GET /v1/ops/deadletters: the selected dead
// letters with their reasons, oldest first (no headers or bodies).
func (s *Server) listDeadLetters(w http.ResponseWriter, r *http.Request) error {
	a, err := s.opsActions()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if err := checkParams(q, "consumer", "class", "since", "until"); err != nil {
		return err
	}
	f, err := deadFilterOf(q.Get)
	if err != nil {
		return err
	}
	list, err := a.dead.List(r.Context(), f)
	if err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"dead_letters": list, "count": len(list)})
}

// getDeadLetter answers GET /v1/ops/deadletters/{seq}: one dead letter
// with headers and body. It is audited, as a body may hold personal data.
func (s *Server) getDeadLetter(w http.ResponseWriter, r *http.Request) error {
	a, err := s.opsActions()
	if err != nil {
		return err
	}
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil || seq == 0 {
		return badParam("seq", "a DEADLETTER sequence (a positive integer), got "+strconv.Quote(r.PathValue("seq")))
	}
	if err := checkParams(r.URL.Query()); err != nil {
		return err
	}
	v, err := a.dead.Get(r.Context(), seq)
	if err != nil {
		return err
	}
	if err := s.record(r, a, "deadletters.show", map[string]any{"seq": seq}, map[string]int{"shown": 1}); err != nil {
		return err
	}
	return writeJSON(w, v)
}

// DeadLetterAction is the body of POST /v1/ops/deadletters/redrive and
// /purge: the dead letters by sequence, by filter, or all.
type DeadLetterAction struct {
	Seqs     []uint64 `json:"seqs"`
	Consumer string   `json:"consumer"`
	Class    string   `json:"class"`
	Since    string   `json:"since"`
	Until    string   `json:"until"`
	All      bool     `json:"all"`
	// FixedBody (redrive) replaces the one selected dead letter's body: the
	// event's data, or a whole structured CloudEvent if the dead letter was
	// one, as JSON.
	FixedBody json.RawMessage `json:"fixed_body"`
	DryRun    bool            `json:"dry_run"` // redrive: validate only
	Reason    string          `json:"reason"`  // purge: required
}

// maxActionBody bounds an action's request body (a fixed body included).
const maxActionBody = 4 << 20

func decodeAction(r *http.Request) (DeadLetterAction, deadletter.Selection, error) {
	var act DeadLetterAction
	dec := json.NewDecoder(io.LimitReader(r.Body, maxActionBody+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&act); err != nil {
		return act, deadletter.Selection{}, badParam("body", "a JSON object with seqs, consumer, class, since, until, all, fixed_body, dry_run or reason: "+err.Error())
	}
	f, err := deadFilterOf(func(k string) string {
		return map[string]string{"consumer": act.Consumer, "class": act.Class, "since": act.Since, "until": act.Until}[k]
	})
	if err != nil {
		return act, deadletter.Selection{}, err
	}
	return act, deadletter.Selection{Seqs: act.Seqs, Filter: f, All: act.All}, nil
}

// resolveDeadLetters decodes an action on dead letters and finds the ones
// it selects. needReason: the action must say why (a purge).
func (s *Server) resolveDeadLetters(r *http.Request, needReason bool) (*opsActions, DeadLetterAction, deadletter.Selection, []deadletter.View, error) {
	a, err := s.opsActions()
	if err != nil {
		return nil, DeadLetterAction{}, deadletter.Selection{}, nil, err
	}
	act, sel, err := decodeAction(r)
	if err != nil {
		return nil, act, sel, nil, err
	}
	if needReason && strings.TrimSpace(act.Reason) == "" {
		return nil, act, sel, nil, badParam("reason", "a purge must say why")
	}
	views, err := a.dead.Resolve(r.Context(), sel)
	return a, act, sel, views, err
}

// redriveDeadLetters answers POST /v1/ops/deadletters/redrive, as
// `journeyctl deadletters redrive` does: each redriven event lands once,
// still-invalid ones stay (outcome still_invalid, with why).
func (s *Server) redriveDeadLetters(w http.ResponseWriter, r *http.Request) error {
	a, act, sel, views, err := s.resolveDeadLetters(r, false)
	if err != nil {
		return err
	}
	var body []byte
	if len(bytes.TrimSpace(act.FixedBody)) > 0 && string(act.FixedBody) != "null" {
		body = act.FixedBody
	}
	results, counts, err := a.dead.Redrive(r.Context(), views, body, act.DryRun, actorOf(r))
	if err != nil {
		return err
	}
	if !act.DryRun {
		if err := s.record(r, a, "deadletters.redrive", sel.Audit(), counts); err != nil {
			return err
		}
	}
	return writeJSON(w, map[string]any{"results": results, "counts": counts})
}

// purgeDeadLetters answers POST /v1/ops/deadletters/purge: the selected
// dead letters are dropped for good, each recorded with the reason.
func (s *Server) purgeDeadLetters(w http.ResponseWriter, r *http.Request) error {
	a, act, sel, views, err := s.resolveDeadLetters(r, true)
	if err != nil {
		return err
	}
	counts, err := a.dead.Purge(r.Context(), views, act.Reason, actorOf(r))
	if err != nil {
		return err
	}
	audited := sel.Audit()
	audited["reason"] = act.Reason
	if err := s.record(r, a, "deadletters.purge", audited, counts); err != nil {
		return err
	}
	return writeJSON(w, map[string]any{"counts": counts})
}

// opsActionProblem maps the ops actions' errors; ok is false for others.
func opsActionProblem(err error) (Problem, bool) {
	switch {
	case errors.Is(err, errNoOpsActions):
		return Problem{Type: ProblemBase + "ops-actions-unavailable", Title: "Ops actions not configured", Status: http.StatusServiceUnavailable,
			Detail: "this API runs without ops actions (JOURNEY_API_OPS_ACTIONS=false): use journeyctl, or enable them with admin NATS and ClickHouse credentials"}, true
	case errors.Is(err, deadletter.ErrNotFound):
		return Problem{Type: ProblemBase + "not-found", Title: "Not found", Status: http.StatusNotFound, Detail: err.Error()}, true
	case errors.Is(err, deadletter.ErrSelection):
		return Problem{Type: ProblemBase + "invalid-parameter", Title: "Invalid request parameter", Status: http.StatusBadRequest, Detail: err.Error()}, true
	}
	return jobProblem(err)
}
