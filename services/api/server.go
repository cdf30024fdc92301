package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/klantreis/journey/pkg/ops"
	"github.com/klantreis/journey/pkg/warehouse"
	"github.com/klantreis/journey/schemas"
)

// Store is what the API reads; *warehouse.DB implements it.
type Store interface {
	Customer(ctx context.Context, id string) (warehouse.CustomerState, error)
	Transitions(ctx context.Context, id string) ([]warehouse.Transition, error)
	Timeline(ctx context.Context, id string, after *warehouse.TimelinePos, limit int) ([]warehouse.Touchpoint, error)
	Customers(ctx context.Context, f warehouse.CustomerFilter) ([]warehouse.CustomerState, error)
	NPS(ctx context.Context, from, to time.Time, iv warehouse.Interval, g warehouse.NPSGroup, maxRows int) ([]warehouse.NPSRow, error)
	StageDistribution(ctx context.Context) ([]warehouse.StageCount, error)
	StageDistributionAt(ctx context.Context, t time.Time) ([]warehouse.StageCount, error)
	StageFlows(ctx context.Context, from, to time.Time) ([]warehouse.StageFlow, error)
	Funnel(ctx context.Context, from, to time.Time) ([]warehouse.FunnelStep, error)
	OpsActions(ctx context.Context, limit int, prefixes ...string) ([]warehouse.OpsAction, error)
}

var errNotReady = errors.New("api: store not ready")

// Route is one method and path the server answers, as the OpenAPI
// document names it.
type Route struct {
	Method string
	Path   string // OpenAPI path template, e.g. /v1/customers/{id}
}

type access int

const (
	open        access = iota // health, metrics, the OpenAPI document, the login
	readAPI                   // /v1: bearer token with read (or admin) scope
	adminAPI                  // /v1 changes and erasure: bearer token with admin scope
	adminExport               // the access export: admin scope, ExportTimeout instead of QueryTimeout
	htmlPage                  // HTML pages: read scope by bearer, Basic (token as password) or the login cookie
	adminPage                 // HTML pages of the admin scope (operations), authenticated as htmlPage
)

type route struct {
	Route
	pattern string // http.ServeMux pattern
	access  access
	h       func(http.ResponseWriter, *http.Request) error
}

// Server is the API and dashboard over a Store. The Store may be set after
// the server starts (ClickHouse may come up later); until then /v1 and the
// dashboard answer 503 and /readyz fails.
type Server struct {
	set      Settings
	log      *slog.Logger
	health   *ops.Health
	store    atomic.Pointer[storeBox]
	tokens   []token
	sessions sessions
	slots    chan struct{}
	now      func() time.Time
	reqs     *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	routes   []route
	dash     *dashboard
	ops      atomic.Pointer[opsSample]
	eraser   eraserSlot
	opsAct   opsActionsSlot
}

type storeBox struct{ Store }

// NewServer builds the server. health receives the API's metrics and a
// "clickhouse" readiness check that passes once a store is set and ping
// answers (ping may be nil).
func NewServer(set Settings, health *ops.Health, ping func(context.Context) error, log *slog.Logger) (*Server, error) {
	set.defaults()
	if log == nil {
		log = slog.Default()
	}
	s := &Server{set: set, log: log, health: health, slots: make(chan struct{}, set.MaxInFlight), now: time.Now}
	// Kept and compared as hashes, so the comparison time says nothing
	// about a token's length.
	toks, err := parseTokens(set.Tokens, set.TokensFile)
	if err != nil {
		return nil, err
	}
	s.tokens = toks
	s.sessions = newSessions(func() time.Time { return s.now() })
	s.reqs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "journey_api_requests_total", Help: "HTTP requests by route and status code.",
	}, []string{"route", "code"})
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "journey_api_request_duration_seconds", Help: "HTTP request latency by route.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route"})
	if err := health.Registry.Register(s.reqs); err != nil {
		return nil, err
	}
	if err := health.Registry.Register(s.latency); err != nil {
		return nil, err
	}
	if err := health.Registry.Register(newOpsCollector(s)); err != nil {
		return nil, err
	}
	health.AddCheck("clickhouse", func(ctx context.Context) error {
		if s.store.Load() == nil {
			return errNotReady
		}
		if ping != nil {
			return ping(ctx)
		}
		return nil
	})
	d, err := newDashboard(s)
	if err != nil {
		return nil, err
	}
	s.dash = d
	s.routes = []route{
		{Route{"GET", "/v1/customers"}, "GET /v1/customers", readAPI, s.listCustomers},
		{Route{"GET", "/v1/customers/{id}"}, "GET /v1/customers/{id}", readAPI, s.getCustomer},
		{Route{"GET", "/v1/customers/{id}/timeline"}, "GET /v1/customers/{id}/timeline", readAPI, s.getTimeline},
		{Route{"DELETE", "/v1/customers/{id}"}, "DELETE /v1/customers/{id}", adminAPI, s.deleteCustomer},
		{Route{"GET", "/v1/erasures/{id}"}, "GET /v1/erasures/{id}", adminAPI, s.getErasure},
		{Route{"GET", "/v1/customers/{id}/export"}, "GET /v1/customers/{id}/export", adminExport, s.exportCustomer},
		{Route{"GET", "/v1/accounts"}, "GET /v1/accounts", readAPI, s.listAccounts},
		{Route{"GET", "/v1/accounts/{id}"}, "GET /v1/accounts/{id}", readAPI, s.getAccount},
		{Route{"GET", "/v1/metrics/nps"}, "GET /v1/metrics/nps", readAPI, s.getNPS},
		{Route{"GET", "/v1/metrics/lifecycle"}, "GET /v1/metrics/lifecycle", readAPI, s.getLifecycle},
		{Route{"GET", "/v1/metrics/funnel"}, "GET /v1/metrics/funnel", readAPI, s.getFunnel},
		{Route{"GET", "/v1/ops/status"}, "GET /v1/ops/status", adminAPI, s.getOpsStatus},
		{Route{"GET", "/v1/ops/deadletters"}, "GET /v1/ops/deadletters", adminAPI, s.listDeadLetters},
		{Route{"GET", "/v1/ops/deadletters/{seq}"}, "GET /v1/ops/deadletters/{seq}", adminAPI, s.getDeadLetter},
		{Route{"POST", "/v1/ops/deadletters/redrive"}, "POST /v1/ops/deadletters/redrive", adminAPI, s.redriveDeadLetters},
		{Route{"POST", "/v1/ops/deadletters/purge"}, "POST /v1/ops/deadletters/purge", adminAPI, s.purgeDeadLetters},
		{Route{"POST", "/v1/ops/jobs"}, "POST /v1/ops/jobs", adminAPI, s.submitJob},
		{Route{"GET", "/v1/ops/jobs"}, "GET /v1/ops/jobs", adminAPI, s.listJobs},
		{Route{"GET", "/v1/ops/jobs/{id}"}, "GET /v1/ops/jobs/{id}", adminAPI, s.getJob},
		{Route{"GET", "/openapi.yaml"}, "GET /openapi.yaml", open, s.getOpenAPI},
		{Route{"GET", "/"}, "GET /{$}", htmlPage, d.overview},
		{Route{"GET", "/customers/{id}"}, "GET /customers/{id}", htmlPage, d.customer},
		{Route{"GET", "/ops"}, "GET /ops", adminPage, d.ops},
		{Route{"GET", "/accounts/{id}"}, "GET /accounts/{id}", htmlPage, d.account},
		{Route{"GET", "/assets/{name}"}, "GET /assets/{name}", open, d.asset},
		{Route{"GET", "/login"}, "GET /login", open, d.login},
		{Route{"POST", "/login"}, "POST /login", open, d.login},
		{Route{"GET", "/logout"}, "GET /logout", open, d.logout},
	}
	return s, nil
}

// SetStore makes the server answer from st.
func (s *Server) SetStore(st Store) { s.store.Store(&storeBox{st}) }

func (s *Server) db() (Store, error) {
	b := s.store.Load()
	if b == nil {
		return nil, errNotReady
	}
	return b.Store, nil
}

// Routes lists every route the handler serves, including /healthz,
// /readyz and /metrics from pkg/ops.
func (s *Server) Routes() []Route {
	out := []Route{{"GET", "/healthz"}, {"GET", "/readyz"}, {"GET", "/metrics"}}
	for _, r := range s.routes {
		out = append(out, r.Route)
	}
	return out
}

// Handler returns the HTTP handler of every route.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.health.Register(mux)
	for _, r := range s.routes {
		mux.Handle(r.pattern, s.wrap(r))
	}
	// Anything else is a problem too, not Go's plain-text 404.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, Problem{Type: ProblemBase + "no-route", Title: "No such resource", Status: http.StatusNotFound,
			Detail: "see /openapi.yaml for the routes"})
	})
	return mux
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(c int) {
	if w.code == 0 {
		w.code = c
	}
	w.ResponseWriter.WriteHeader(c)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (s *Server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			s.reqs.WithLabelValues(rt.Path, strconv.Itoa(sw.code)).Inc()
			s.latency.WithLabelValues(rt.Path).Observe(time.Since(start).Seconds())
		}()
		if rt.access != open {
			if !s.allow(sw, r, rt.access) {
				return
			}
			select {
			case s.slots <- struct{}{}:
				defer func() { <-s.slots }()
			default:
				sw.Header().Set("Retry-After", "1")
				writeProblem(sw, r, Problem{Type: ProblemBase + "busy", Title: "Too many requests in flight",
					Status: http.StatusServiceUnavailable, Detail: "retry shortly"})
				return
			}
		}
		timeout := s.set.QueryTimeout
		if rt.access == adminExport {
			timeout = s.set.ExportTimeout
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		r = r.WithContext(ctx)
		if err := rt.h(sw, r); err != nil {
			s.writeError(sw, r, err)
		}
	})
}

// allow answers a request that lacks the scope its route needs: 401 with
// no valid credentials (an HTML page sends a browser to the login
// instead), 403 with a token of too small a scope. With no tokens
// configured everything is allowed (an open API; Run refuses that unless
// JOURNEY_API_OPEN is set).
func (s *Server) allow(w http.ResponseWriter, r *http.Request, a access) bool {
	if len(s.tokens) == 0 {
		return true
	}
	want := ScopeRead
	if a == adminAPI || a == adminExport || a == adminPage {
		want = ScopeAdmin
	}
	page := a == htmlPage || a == adminPage
	have, ok := s.scopeOf(r)
	switch {
	case ok && grants(have, want):
		return true
	case ok:
		writeProblem(w, r, Problem{Type: ProblemBase + "forbidden", Title: "Forbidden", Status: http.StatusForbidden,
			Detail: "this needs a token with " + string(want) + " scope; this one has " + string(have)})
		return false
	case page && strings.Contains(r.Header.Get("Accept"), "text/html"):
		http.Redirect(w, r, loginURL(r), http.StatusSeeOther)
		return false
	}
	if page {
		w.Header().Set("WWW-Authenticate", `Basic realm="journey", charset="UTF-8"`)
	} else {
		w.Header().Set("WWW-Authenticate", `Bearer realm="journey", scope="`+string(want)+`"`)
	}
	writeProblem(w, r, Problem{Type: ProblemBase + "unauthorized", Title: "Unauthorized",
		Status: http.StatusUnauthorized, Detail: "a bearer token with " + string(want) + " scope is required"})
	return false
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	return writeJSONBody(w, v)
}

func writeJSONBody(w http.ResponseWriter, v any) error { return json.NewEncoder(w).Encode(v) }

// writeAccepted answers 202 with v and the Location to poll for the
// outcome of work that goes on after the response (an erasure, a job).
func writeAccepted(w http.ResponseWriter, location string, v any) error {
	w.Header().Set("Location", location)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusAccepted)
	return writeJSONBody(w, v)
}

func (s *Server) getOpenAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/yaml")
	_, err := w.Write(schemas.OpenAPI)
	return err
}
