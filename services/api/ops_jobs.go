package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/klantreis/journey/pkg/opsjob"
)

// JobQueue is the ops job queue (pkg/opsjob) that /v1/ops/jobs submits
// to and reads; the jobs run in a worker (journeyctl jobs work), which
// runs the very commands an operator would.
type JobQueue interface {
	Store(ctx context.Context) (*opsjob.Store, error)
}

// JobRequest is the body of POST /v1/ops/jobs.
type JobRequest struct {
	// Args are journeyctl's arguments, the command first.
	Args []string `json:"args"`
}

func (s *Server) jobQueue(ctx context.Context) (*opsjob.Store, *opsActions, error) {
	a, err := s.opsActions()
	if err != nil {
		return nil, nil, err
	}
	if a.jobs == nil {
		return nil, nil, errNoOpsActions
	}
	q, err := a.jobs.Store(ctx)
	return q, a, err
}

// submitJob answers POST /v1/ops/jobs: the job is queued and audited, and
// the answer is 202 with the job and its Location.
func (s *Server) submitJob(w http.ResponseWriter, r *http.Request) error {
	q, a, err := s.jobQueue(r.Context())
	if err != nil {
		return err
	}
	var req JobRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxActionBody+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return badParam("body", `a JSON object {"args": [journeyctl's arguments, the command first]}: `+err.Error())
	}
	j, err := q.Submit(r.Context(), req.Args, actorOf(r), s.now())
	if err != nil {
		return err
	}
	if err := s.record(r, a, "jobs.submit", map[string]any{"job": j.ID, "command": j.Args[0]}, map[string]int{"queued": 1}); err != nil {
		return err
	}
	return writeAccepted(w, "/v1/ops/jobs/"+j.ID, j)
}

// getJob answers GET /v1/ops/jobs/{id}: the job's state, progress and,
// once finished, its exit code and the command's JSON result.
func (s *Server) getJob(w http.ResponseWriter, r *http.Request) error {
	q, _, err := s.jobQueue(r.Context())
	if err != nil {
		return err
	}
	if err := checkParams(r.URL.Query()); err != nil {
		return err
	}
	j, _, err := q.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, j)
}

// listJobs answers GET /v1/ops/jobs: newest first, at most limit (20).
func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) error {
	q, _, err := s.jobQueue(r.Context())
	if err != nil {
		return err
	}
	qs := r.URL.Query()
	if err := checkParams(qs, "limit"); err != nil {
		return err
	}
	limit := 20
	if v := qs.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return badParam("limit", "an integer from 1 to 1000, got "+strconv.Quote(v))
		}
		limit = n
	}
	jobs, err := q.List(r.Context(), limit)
	if err != nil {
		return err
	}
	if jobs == nil {
		jobs = []opsjob.Job{}
	}
	return writeJSON(w, map[string]any{"jobs": jobs, "count": len(jobs)})
}

// jobProblem maps the job queue's errors; ok is false for others.
func jobProblem(err error) (Problem, bool) {
	switch {
	case errors.Is(err, opsjob.ErrInvalid):
		return Problem{Type: ProblemBase + "invalid-parameter", Title: "Invalid request parameter", Status: http.StatusBadRequest, Detail: err.Error()}, true
	case errors.Is(err, opsjob.ErrNotFound):
		return Problem{Type: ProblemBase + "not-found", Title: "Not found", Status: http.StatusNotFound, Detail: err.Error()}, true
	case errors.Is(err, opsjob.ErrNoQueue):
		return Problem{Type: ProblemBase + "ops-jobs-unavailable", Title: "No jobs worker", Status: http.StatusServiceUnavailable, Detail: err.Error()}, true
	}
	return Problem{}, false
}
