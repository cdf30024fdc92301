package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/klantreis/journey/pkg/ops"
	"github.com/klantreis/journey/pkg/opsstatus"
	"github.com/klantreis/journey/pkg/warehouse"
)

// opsSample is the newest ops snapshot, or why there is none.
type opsSample struct {
	Snap opsstatus.Snapshot
	Err  string
	At   time.Time
}

// OpsStatus answers GET /v1/ops/status: the streams, consumers and dead
// letters as last sampled from NATS (null with nats_error when that
// failed or the API has no NATS connection), and the ops actions from the
// audit trail.
type OpsStatus struct {
	NATS          *opsstatus.Snapshot   `json:"nats"`
	NATSError     string                `json:"nats_error,omitempty"`
	SampledAt     *time.Time            `json:"sampled_at"`
	LastRebuild   *warehouse.OpsAction  `json:"last_rebuild_or_rederive"`
	RecentActions []warehouse.OpsAction `json:"recent_actions"`
}

// RunOps samples r every interval into what /v1/ops/status, the ops page
// and /metrics show, until ctx ends. The first sample is taken at once;
// the drain rates and ETAs are measured between consecutive samples.
func (s *Server) RunOps(ctx context.Context, r opsstatus.Reader, every time.Duration) {
	var prev *opsstatus.Snapshot
	var lastErr string
	ops.EveryFromNow(ctx, every, func(ctx context.Context) {
		snap, err := r.Read(ctx, prev)
		smp := &opsSample{At: s.now()}
		if err != nil {
			smp.Err = err.Error()
			if smp.Err != lastErr {
				s.log.Warn("api: ops status from nats", "err", err)
			}
			prev = nil
		} else {
			smp.Snap, prev = snap, &snap
		}
		lastErr = smp.Err
		s.ops.Store(smp)
	})
}

func (s *Server) opsStatus(r *http.Request) (OpsStatus, error) {
	st, err := s.db()
	if err != nil {
		return OpsStatus{}, err
	}
	var out OpsStatus
	switch smp := s.ops.Load(); {
	case smp == nil:
		out.NATSError = "no NATS connection: the API samples NATS only when JOURNEY_API_OPS_SAMPLE > 0 and JOURNEY_NATS_URL reaches a server"
	case smp.Err != "":
		out.NATSError, out.SampledAt = smp.Err, &smp.At
	default:
		out.NATS, out.SampledAt = &smp.Snap, &smp.At
	}
	limit := 20
	if v := r.URL.Query().Get("actions"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > s.set.MaxPageSize {
			return OpsStatus{}, badParam("actions", "must be an integer from 0 to "+strconv.Itoa(s.set.MaxPageSize))
		}
		limit = n
	}
	if out.RecentActions, err = st.OpsActions(r.Context(), limit); err != nil {
		return OpsStatus{}, err
	}
	last, err := st.OpsActions(r.Context(), 1, "rebuild.", "rederive.")
	if err != nil {
		return OpsStatus{}, err
	}
	if len(last) == 1 {
		out.LastRebuild = &last[0]
	}
	if out.RecentActions == nil {
		out.RecentActions = []warehouse.OpsAction{}
	}
	return out, nil
}

func (s *Server) getOpsStatus(w http.ResponseWriter, r *http.Request) error {
	if err := checkParams(r.URL.Query(), "actions"); err != nil {
		return err
	}
	st, err := s.opsStatus(r)
	if err != nil {
		return err
	}
	return writeJSON(w, st)
}

// opsCollector exports the newest sample on /metrics at scrape time.
type opsCollector struct {
	s                                *Server
	streamMsgs, lag, eta, rate, dead *prometheus.Desc
}

func newOpsCollector(s *Server) *opsCollector {
	return &opsCollector{s: s,
		streamMsgs: prometheus.NewDesc("journey_ops_stream_messages", "Messages held per stream (last sample).", []string{"stream"}, nil),
		lag:        prometheus.NewDesc("journey_ops_consumer_lag", "Messages a durable consumer has not acknowledged (last sample).", []string{"stream", "consumer"}, nil),
		rate:       prometheus.NewDesc("journey_ops_consumer_drain_rate", "Acknowledgements per second between the last two samples.", []string{"stream", "consumer"}, nil),
		eta:        prometheus.NewDesc("journey_ops_consumer_eta_seconds", "Seconds to drain the lag at the drain rate; -1 when stalled.", []string{"stream", "consumer"}, nil),
		dead:       prometheus.NewDesc("journey_ops_dead_letters", "Dead letters held per consumer that wrote them (last sample).", []string{"consumer"}, nil),
	}
}

func (c *opsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.streamMsgs, c.lag, c.rate, c.eta, c.dead} {
		ch <- d
	}
}

func (c *opsCollector) Collect(ch chan<- prometheus.Metric) {
	smp := c.s.ops.Load()
	if smp == nil || smp.Err != "" {
		return
	}
	for _, st := range smp.Snap.Streams {
		ch <- prometheus.MustNewConstMetric(c.streamMsgs, prometheus.GaugeValue, float64(st.Messages), st.Name)
	}
	for _, cs := range smp.Snap.Consumers {
		ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, float64(cs.Lag), cs.Stream, cs.Name)
		ch <- prometheus.MustNewConstMetric(c.rate, prometheus.GaugeValue, cs.RatePerSec, cs.Stream, cs.Name)
		ch <- prometheus.MustNewConstMetric(c.eta, prometheus.GaugeValue, cs.ETASeconds, cs.Stream, cs.Name)
	}
	for cons, n := range smp.Snap.DeadLetters {
		ch <- prometheus.MustNewConstMetric(c.dead, prometheus.GaugeValue, float64(n), cons)
	}
}

// ops is the dashboard's ops page: the same figures as /v1/ops/status.
func (d *dashboard) ops(w http.ResponseWriter, r *http.Request) error {
	if err := checkParams(r.URL.Query()); err != nil {
		return d.htmlError(w, r, err)
	}
	st, err := d.s.opsStatus(r)
	if err != nil {
		return d.htmlError(w, r, err)
	}
	return d.render(w, "ops.html", map[string]any{"Title": "Operations", "S": st})
}
