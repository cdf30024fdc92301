package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/audit"
	"github.com/klantreis/journey/pkg/deadletter"
	"github.com/klantreis/journey/pkg/erasure"
	"github.com/klantreis/journey/pkg/opsjob"
	"github.com/klantreis/journey/pkg/privacy"
	"github.com/klantreis/journey/pkg/retry"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/warehouse"
)

// Eraser runs erasures (*privacy.Service implements it). The API holds
// one only when erasure is configured (JOURNEY_API_ERASURE): its NATS and
// ClickHouse credentials are an admin's, which a read-only API lacks.
type Eraser interface {
	// Begin records an erasure and runs it in the background.
	Begin(ctx context.Context, customers []string, done func(privacy.Receipt, error)) (privacy.Receipt, error)
	// Get returns a recorded erasure's receipt (erasure.ErrNotFound).
	Get(ctx context.Context, id string) (privacy.Receipt, error)
}

type eraserBox struct {
	Eraser
	ctx context.Context // the server's lifetime: erasures outlive requests
}

// eraserSlot is the server's eraser, set by SetEraser.
type eraserSlot = atomic.Pointer[eraserBox]

// SetEraser enables DELETE /v1/customers/{id} and GET /v1/erasures/{id}:
// erasures run under ctx (the server's lifetime, not a request's).
func (s *Server) SetEraser(ctx context.Context, e Eraser) {
	s.eraser.Store(&eraserBox{Eraser: e, ctx: ctx})
}

var errNoEraser = errors.New("api: erasure not configured")

func (s *Server) erasureService() (*eraserBox, error) {
	b := s.eraser.Load()
	if b == nil {
		return nil, errNoEraser
	}
	return b, nil
}

// deleteCustomer starts the erasure of one customer (right to be
// forgotten) and answers 202 with the receipt so far and its Location;
// GET /v1/erasures/{id} follows it to completion. Whether the customer
// exists is not checked: an erasure of an unknown id suppresses it and
// finds nothing, which is what a request to forget them asks.
func (s *Server) deleteCustomer(w http.ResponseWriter, r *http.Request) error {
	b, err := s.erasureService()
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if err := validID("id", id); err != nil {
		return err
	}
	if err := checkParams(r.URL.Query()); err != nil {
		return err
	}
	rc, err := b.Begin(b.ctx, []string{id}, func(rc privacy.Receipt, err error) {
		if err != nil {
			s.log.Error("erasure failed; it resumes when the API restarts or with journeyctl erase --resume", "erasure", rc.ErasureID, "err", err)
			return
		}
		s.log.Info("erasure complete", "erasure", rc.ErasureID)
	})
	if err != nil {
		return err
	}
	return writeAccepted(w, "/v1/erasures/"+rc.ErasureID, rc)
}

// getErasure serves an erasure's receipt: phase, per-store counts, start
// and (once complete) completion time.
func (s *Server) getErasure(w http.ResponseWriter, r *http.Request) error {
	b, err := s.erasureService()
	if err != nil {
		return err
	}
	rc, err := b.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, rc)
}

// erasureProblem maps the erasure's errors; ok is false for others.
func erasureProblem(err error) (Problem, bool) {
	switch {
	case errors.Is(err, errNoEraser):
		return Problem{Type: ProblemBase + "erasure-unavailable", Title: "Erasure not configured", Status: http.StatusServiceUnavailable,
			Detail: "this API runs without erasure (JOURNEY_API_ERASURE=false): use journeyctl erase, or enable it with admin NATS and ClickHouse credentials"}, true
	case errors.Is(err, erasure.ErrNotFound):
		return Problem{Type: ProblemBase + "not-found", Title: "Not found", Status: http.StatusNotFound, Detail: "no erasure with this id"}, true
	case errors.Is(err, erasure.ErrInvalid):
		return Problem{Type: ProblemBase + "invalid-parameter", Title: "Invalid request parameter", Status: http.StatusBadRequest, Detail: err.Error()}, true
	case errors.Is(err, privacy.ErrUncovered):
		return Problem{Type: ProblemBase + "erasure-uncovered-store", Title: "A store is not covered by the erasure", Status: http.StatusInternalServerError, Detail: err.Error()}, true
	}
	return Problem{}, false
}

// startAdmin connects as an admin (NATS and ClickHouse), retrying until it
// works or ctx ends, and enables what needs one: the erasure endpoints
// (JOURNEY_API_ERASURE), whose erasures a crash left unfinished it then
// finishes, and the ops actions (JOURNEY_API_OPS_ACTIONS). The
// connections live until ctx ends.
func startAdmin(ctx context.Context, cfg Config, srv *Server, log *slog.Logger) {
	ch := cfg.ClickHouse
	if cfg.API.ErasureClickHouseUser != "" {
		ch.User, ch.Password = cfg.API.ErasureClickHouseUser, cfg.API.ErasureClickHousePassword
	}
	if cfg.NATS.Name == "" {
		cfg.NATS.Name = "journey-api-admin"
	}
	var svc *privacy.Service
	err := retry.Do(ctx, retry.Policy{Initial: 250 * time.Millisecond, Max: 10 * time.Second,
		OnRetry: func(_ int, err error, wait time.Duration) {
			log.Warn("admin connections not ready, retrying", "err", err, "in", wait)
		}},
		func(ctx context.Context) error {
			nc, js, err := stream.Connect(cfg.NATS, log)
			if err != nil {
				return err
			}
			db, err := warehouse.Open(ctx, ch)
			if err == nil {
				if _, err = db.Migrate(ctx); err != nil {
					db.Close()
				}
			}
			if err != nil {
				nc.Close()
				return err
			}
			closeAll := func() { nc.Close(); db.Close() }
			if cfg.API.Erasure {
				if svc, err = privacy.Open(ctx, js, db, privacy.Options{}); err != nil {
					closeAll()
					return err
				}
			}
			if cfg.API.OpsActions {
				if err := ensureAuditStream(ctx, js); err != nil {
					closeAll()
					return err
				}
				srv.SetOpsActions(deadletter.Ops{JS: js, DB: db, Now: srv.now}, opsjob.NewBinder(js), audit.Recorder{JS: js, DB: db, Source: "journey-api"})
				log.Info("ops actions enabled")
			}
			context.AfterFunc(ctx, closeAll)
			return nil
		})
	if err != nil || svc == nil {
		return // ctx ended, or no erasure
	}
	srv.SetEraser(ctx, svc)
	log.Info("erasure enabled")
	if rs, err := svc.ResumeAll(ctx); err != nil {
		log.Error("resuming unfinished erasures", "err", err)
	} else if len(rs) > 0 {
		log.Info("resumed unfinished erasures", "erasures", len(rs))
	}
}

// ensureAuditStream creates the OPS stream when journeyctl has not: the
// API's actions are audited there too. One that exists is left as it is
// (journeyctl sets it up from the topology, which the API does not read).
func ensureAuditStream(ctx context.Context, js jetstream.JetStream) error {
	_, err := js.Stream(ctx, audit.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = js.CreateStream(ctx, audit.StreamConfig(stream.DefaultTopology()))
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("api: audit stream %s: %w", audit.Stream, err)
	}
	return nil
}
