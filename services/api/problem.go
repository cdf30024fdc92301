package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/klantreis/journey/pkg/warehouse"
)

// ProblemBase prefixes the type URI of every problem this API returns.
const ProblemBase = "https://journey.klantreis.io/problems/"

// InvalidParam names one bad request parameter (RFC 9457 §3 example
// extension "invalid-params").
type InvalidParam struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// Problem is an RFC 9457 problem details object.
type Problem struct {
	Type          string         `json:"type"`
	Title         string         `json:"title"`
	Status        int            `json:"status"`
	Detail        string         `json:"detail,omitempty"`
	Instance      string         `json:"instance,omitempty"`
	InvalidParams []InvalidParam `json:"invalid-params,omitempty"`
}

func writeProblem(w http.ResponseWriter, r *http.Request, p Problem) {
	if p.Instance == "" && r != nil {
		p.Instance = r.URL.Path
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// paramError is a bad parameter found while parsing a request.
type paramError struct{ params []InvalidParam }

func (e *paramError) Error() string {
	if len(e.params) == 0 {
		return "invalid parameter"
	}
	return "invalid parameter " + e.params[0].Name + ": " + e.params[0].Reason
}

func badParam(name, reason string) error {
	return &paramError{params: []InvalidParam{{Name: name, Reason: reason}}}
}

// writeError maps an error to its problem: bad parameters 400, unknown
// customers 404, too large results 422, timeouts 504, the rest 500/503
// without internals in the body (they are logged).
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var pe *paramError
	if p, ok := opsActionProblem(err); ok {
		writeProblem(w, r, p)
		return
	}
	if p, ok := erasureProblem(err); ok {
		if p.Status >= 500 {
			s.log.Error("erasure request failed", "path", r.URL.Path, "err", err)
		}
		writeProblem(w, r, p)
		return
	}
	switch {
	case errors.As(err, &pe):
		writeProblem(w, r, Problem{Type: ProblemBase + "invalid-parameter", Title: "Invalid request parameter",
			Status: http.StatusBadRequest, Detail: pe.Error(), InvalidParams: pe.params})
	case errors.Is(err, warehouse.ErrNotFound):
		writeProblem(w, r, Problem{Type: ProblemBase + "not-found", Title: "Not found",
			Status: http.StatusNotFound, Detail: notFoundDetail(r.URL.Path)})
	case errors.Is(err, warehouse.ErrTooMany):
		writeProblem(w, r, Problem{Type: ProblemBase + "result-too-large", Title: "Result too large",
			Status: http.StatusUnprocessableEntity, Detail: "the result has too many series; narrow the range or drop group_by"})
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(r.Context().Err(), context.DeadlineExceeded):
		// The driver does not always wrap the context's error, so the
		// request's own deadline decides too.
		s.log.Warn("query timed out", "path", r.URL.Path, "err", err)
		writeProblem(w, r, Problem{Type: ProblemBase + "timeout", Title: "Query timed out",
			Status: http.StatusGatewayTimeout, Detail: "the query took longer than the configured limit"})
	case errors.Is(err, errNoAccounts):
		writeProblem(w, r, Problem{Type: ProblemBase + "unavailable", Title: "Not available",
			Status: http.StatusServiceUnavailable, Detail: "this store serves no accounts"})
	case errors.Is(err, errNotReady):
		writeProblem(w, r, Problem{Type: ProblemBase + "unavailable", Title: "Not ready",
			Status: http.StatusServiceUnavailable, Detail: "ClickHouse is not reachable yet"})
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads the answer.
	default:
		s.log.Error("request failed", "path", r.URL.Path, "err", err)
		writeProblem(w, r, Problem{Type: ProblemBase + "internal", Title: "Internal error",
			Status: http.StatusInternalServerError, Detail: "the query failed; see the server log"})
	}
}
