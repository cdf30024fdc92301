package projector

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/projection"
	"github.com/klantreis/journey/pkg/touchpoint"
)

type metrics struct {
	applied     prometheus.Counter
	transitions *prometheus.CounterVec
	derived     *prometheus.CounterVec
	lag         *prometheus.GaugeVec
	latency     prometheus.Histogram
	batchErrors *prometheus.CounterVec
	deadLetters prometheus.Counter
	scheduled   *prometheus.GaugeVec
	waiting     *prometheus.GaugeVec
	swept       prometheus.Counter
	batchSize   prometheus.Histogram

	insertLatency prometheus.Histogram
	warehouseRows prometheus.Counter
}

func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		applied: prometheus.NewCounter(prometheus.CounterOpts{Name: "journey_projector_events_applied_total",
			Help: "Fact events applied and committed (state written)."}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "journey_projector_transitions_total",
			Help: "Stage transitions written, by from and to stage (rewrites of history count again)."}, []string{"from", "to"}),
		derived: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "journey_projector_derived_events_total",
			Help: "Derived events published, by kind."}, []string{"kind"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "journey_projector_lag_events",
			Help: "Events of a partition not yet acknowledged by the projector (pending + in flight)."}, []string{"partition"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "journey_projector_apply_latency_seconds",
			Help:    "Time from an event's storage in the stream to its customer's state written in the key-value bucket.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}),
		batchErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "journey_projector_batch_errors_total",
			Help: "Failed attempts to commit a batch (retried), by stage."}, []string{"op"}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{Name: "journey_projector_dead_letters_total",
			Help: "Messages sent to the dead-letter stream (undecodable or invalid)."}),
		scheduled: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "journey_projector_scheduled_customers",
			Help: "Customers with an inactivity expiry in the sweep schedule, by partition."}, []string{"partition"}),
		waiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "journey_projector_checkpoint_waiting_events",
			Help: "Touchpoints of a partition applied and waiting for the checkpoint that stores their states (checkpoint mode): they count in journey_projector_lag_events but are done."}, []string{"partition"}),
		swept: prometheus.NewCounter(prometheus.CounterOpts{Name: "journey_projector_swept_total",
			Help: "Customers examined by the inactivity sweep because their expiry passed."}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "journey_projector_batch_events",
			Help: "Events per applied batch.", Buckets: prometheus.ExponentialBuckets(1, 4, 8)}),
	}
	m.insertLatency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "journey_projector_warehouse_insert_seconds",
		Help: "Duration of one ClickHouse insert of outbox rows (three tables side by side).", Buckets: prometheus.DefBuckets})
	m.warehouseRows = prometheus.NewCounter(prometheus.CounterOpts{Name: "journey_projector_warehouse_states_total",
		Help: "customer_state rows inserted into ClickHouse."})
	r.MustRegister(m.insertLatency, m.warehouseRows)
	r.MustRegister(m.applied, m.transitions, m.derived, m.lag, m.latency, m.batchErrors, m.deadLetters, m.scheduled, m.waiting, m.swept, m.batchSize)
	return m
}

// observer feeds the metrics from projection callbacks.
type observer struct{ m *metrics }

var _ projection.Observer = observer{}

func (o observer) Applied(msgs []projection.Msg, at time.Time) {
	o.m.applied.Add(float64(len(msgs)))
	o.m.batchSize.Observe(float64(len(msgs)))
	for i := range msgs {
		if !msgs[i].Published.IsZero() {
			o.m.latency.Observe(at.Sub(msgs[i].Published).Seconds())
		}
	}
}

func (o observer) Transition(from, to journey.Stage) {
	o.m.transitions.WithLabelValues(string(from), string(to)).Inc()
}

func (o observer) Derived(k touchpoint.Kind) { o.m.derived.WithLabelValues(string(k)).Inc() }

func partitionLabel(p int) string { return strconv.Itoa(p) }
