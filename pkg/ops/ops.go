// Package ops serves what operators and orchestrators ask every journey
// service: /healthz (the process is up), /readyz (its dependencies answer)
// and /metrics (Prometheus), plus an HTTP server lifecycle that drains on
// shutdown.
package ops

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check reports whether one dependency is usable; nil means ready.
type Check func(ctx context.Context) error

// Health holds the readiness checks and the metrics registry of a service.
type Health struct {
	Registry *prometheus.Registry
	mu       sync.RWMutex
	checks   map[string]Check
}

// NewHealth returns a Health with a fresh registry that already has the Go
// runtime and process collectors.
func NewHealth() *Health {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Health{Registry: r, checks: map[string]Check{}}
}

// AddCheck registers a named readiness check (e.g. "nats", "clickhouse").
func (h *Health) AddCheck(name string, c Check) {
	h.mu.Lock()
	h.checks[name] = c
	h.mu.Unlock()
}

// Ready runs every check with a 2s bound and returns the failures by name.
func (h *Health) Ready(ctx context.Context) map[string]string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	failed := map[string]string{}
	for name, c := range h.checks {
		if err := c(ctx); err != nil {
			failed[name] = err.Error()
		}
	}
	return failed
}

// Register adds /healthz, /readyz and /metrics to mux.
func (h *Health) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		failed := h.Ready(r.Context())
		w.Header().Set("Content-Type", "application/json")
		if len(failed) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]any{"status": "not ready", "failed": failed})
			return
		}
		_, _ = w.Write([]byte(`{"status":"ready"}` + "\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(h.Registry, promhttp.HandlerOpts{Registry: h.Registry}))
}

// Serve runs an HTTP server on addr until ctx is cancelled, then shuts it
// down, letting requests in flight finish for up to drain. If ready is not
// nil it receives the bound address once listening (addr may use port 0).
func Serve(ctx context.Context, addr string, h http.Handler, drain time.Duration, log *slog.Logger, ready chan<- net.Addr) error {
	return ServeTLS(ctx, addr, h, drain, log, ready, nil)
}

// ServeTLS is Serve with HTTPS when tc is not nil (plain HTTP otherwise):
// the same timeouts, drain and ready address.
func ServeTLS(ctx context.Context, addr string, h http.Handler, drain time.Duration, log *slog.Logger, ready chan<- net.Addr, tc *tls.Config) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	if ready != nil {
		ready <- ln.Addr()
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("http shutdown", "addr", addr, "err", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
