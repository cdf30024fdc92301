package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fastjson"
	"golang.org/x/time/rate"

	"github.com/klantreis/journey/pkg/ops"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/suppression"
)

// Conn is what the collector asks of the NATS connection: whether it is up,
// so that it answers 503 at once instead of buffering a publish it cannot
// confirm.
type Conn interface {
	IsConnected() bool
}

// Publisher is the part of JetStream the collector uses.
type Publisher interface {
	PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
	Stream(ctx context.Context, name string) (jetstream.Stream, error)
}

// Collector serves the collector's HTTP interface. Build it with [New].
type Collector struct {
	s       Settings
	tokens  *Tokens
	nc      Conn
	js      Publisher
	log     *slog.Logger
	m       *metrics
	health  *ops.Health
	sem     chan struct{}
	browser *rate.Limiter
	now     func() time.Time
	// Request bodies and batch parsers are reused: a batch is up to 1 MiB.
	bufs    sync.Pool
	parsers fastjson.ParserPool
	// supp refuses the events of erased customers once the suppression
	// list is loaded (see suppress.go).
	supp atomic.Pointer[suppression.Guard]
}

// NewJetStream returns the JetStream context the collector publishes with:
// async acks time out after s.AckTimeout (so a lost publish never stays
// pending) and at most s.MaxPendingAcks publishes await an ack.
func NewJetStream(nc *nats.Conn, conn stream.Conn, s Settings) (jetstream.JetStream, error) {
	timeout := conn.RequestTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	js, err := jetstream.New(nc,
		jetstream.WithDefaultTimeout(timeout),
		jetstream.WithPublishAsyncTimeout(s.AckTimeout),
		jetstream.WithPublishAsyncMaxPending(s.MaxPendingAcks),
	)
	if err != nil {
		return nil, fmt.Errorf("collector: jetstream: %w", err)
	}
	return js, nil
}

// New builds a collector from its settings (tokens included), a NATS
// connection and a JetStream context (see [NewJetStream]). It registers its
// metrics and its readiness check ("nats": connected and the touchpoint
// stream present) on health. It fails on a bad setting or with
// [ErrNoTokens].
func New(s Settings, nc Conn, js Publisher, health *ops.Health, log *slog.Logger) (*Collector, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	tokens, err := LoadTokens(s)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	if health == nil {
		health = ops.NewHealth()
	}
	m, err := newMetrics(health.Registry)
	if err != nil {
		return nil, fmt.Errorf("collector: metrics: %w", err)
	}
	c := &Collector{
		s: s, tokens: tokens, nc: nc, js: js, log: log, m: m, health: health,
		sem: make(chan struct{}, s.MaxConcurrent),
		now: time.Now,
	}
	c.bufs.New = func() any { return new(bytes.Buffer) }
	if s.BrowserSource != "" {
		c.browser = rate.NewLimiter(rate.Limit(s.BrowserRate), int(2*s.BrowserRate)+1)
	}
	health.AddCheck("nats", c.ready)
	return c, nil
}

// ErrNotConnected: the NATS connection is down (it keeps reconnecting).
var ErrNotConnected = errors.New("collector: nats not connected")

// ready is the readiness check: NATS connected and the touchpoint stream
// present (created by the topology loop of [Run] or by another service).
func (c *Collector) ready(ctx context.Context) error {
	if !c.nc.IsConnected() {
		return ErrNotConnected
	}
	if _, err := c.js.Stream(ctx, stream.TouchpointStream); err != nil {
		return fmt.Errorf("collector: stream %s: %w", stream.TouchpointStream, err)
	}
	return nil
}

// Handler serves every route: POST/OPTIONS /v1/events, POST/OPTIONS
// /v1/visits, GET /healthz, /readyz and /metrics.
func (c *Collector) Handler() http.Handler {
	mux := http.NewServeMux()
	c.health.Register(mux)
	mux.HandleFunc("POST /v1/events", c.handleEvents)
	mux.HandleFunc("OPTIONS /v1/events", c.handleWebhookHandshake)
	mux.HandleFunc("POST /v1/visits", c.handleVisit)
	mux.HandleFunc("OPTIONS /v1/visits", c.handleVisitPreflight)
	mux.HandleFunc("/", c.handleUnknown)
	return mux
}

// allowedMethods are the methods of the collector's own routes, for a 405.
var allowedMethods = map[string]string{"/v1/events": "POST, OPTIONS", "/v1/visits": "POST, OPTIONS"}

// handleUnknown answers a path or method the collector does not serve with
// the same JSON error body as every other refusal, not the mux's text.
func (c *Collector) handleUnknown(w http.ResponseWriter, r *http.Request) {
	if allow, ok := allowedMethods[r.URL.Path]; ok {
		w.Header().Set("Allow", allow)
		c.refuse(w, http.StatusMethodNotAllowed, ReasonMethod, r.Method+" is not served on "+r.URL.Path+"; use "+allow)
		return
	}
	c.refuse(w, http.StatusNotFound, ReasonNotFound, "no such endpoint: "+r.URL.Path+"; events go to POST /v1/events")
}
