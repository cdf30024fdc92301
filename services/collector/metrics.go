package collector

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the collector's Prometheus series. Labels are bounded: kinds
// come from the contract ("unknown" otherwise), reasons and endpoints from
// this package, so no client input becomes a label value.
type metrics struct {
	requests *prometheus.CounterVec // endpoint, code
	events   *prometheus.CounterVec // kind, outcome, reason
	publish  prometheus.Histogram   // seconds from publish to the last ack of a request
	inFlight prometheus.Gauge       // requests being handled
	batch    prometheus.Histogram   // events per batch request
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "journey", Subsystem: "collector", Name: "requests_total",
			Help: "HTTP requests by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "journey", Subsystem: "collector", Name: "events_total",
			Help: "Events by kind and outcome (accepted, duplicate, rejected, failed) with the reason of a refusal.",
		}, []string{"kind", "outcome", "reason"}),
		publish: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "journey", Subsystem: "collector", Name: "publish_seconds",
			Help:    "Time from publishing a request's events to JetStream's last ack.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "journey", Subsystem: "collector", Name: "requests_in_flight",
			Help: "Requests being handled.",
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "journey", Subsystem: "collector", Name: "batch_events",
			Help:    "Events per batch request.",
			Buckets: []float64{0, 1, 10, 50, 100, 250, 500, 1000},
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.events, m.publish, m.inFlight, m.batch} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) request(endpoint string, code int) {
	m.requests.WithLabelValues(endpoint, strconv.Itoa(code)).Inc()
}
