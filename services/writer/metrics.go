package writer

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	rows        prometheus.Counter
	batches     prometheus.Counter
	batchRows   prometheus.Histogram
	batchSecs   prometheus.Histogram
	visibleSecs prometheus.Histogram
	pending     prometheus.Gauge
	ackPending  prometheus.Gauge
	dead        *prometheus.CounterVec
	duplicates  prometheus.Counter
	redelivered prometheus.Counter
	retries     *prometheus.CounterVec
	abandoned   prometheus.Counter
}

func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		rows: prometheus.NewCounter(prometheus.CounterOpts{Name: "journey_writer_rows_written_total",
			Help: "Rows inserted into events."}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{Name: "journey_writer_batches_total",
			Help: "Batches processed to the ack."}),
		batchRows: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "journey_writer_batch_rows",
			Help: "Messages per batch.", Buckets: prometheus.ExponentialBuckets(1, 4, 9)}),
		batchSecs: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "journey_writer_batch_seconds",
			Help: "Time from handing a batch to the inserter to its acks, retries included.", Buckets: prometheus.ExponentialBuckets(0.001, 3, 12)}),
		visibleSecs: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "journey_writer_publish_to_insert_seconds",
			Help: "Time from the message's stream timestamp to the end of its insert.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "journey_writer_consumer_pending",
			Help: "Messages in the stream not yet delivered to any writer (consumer lag)."}),
		ackPending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "journey_writer_consumer_ack_pending",
			Help: "Messages delivered to writers and not yet acked."}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "journey_writer_dead_lettered_total",
			Help: "Messages sent to the dead-letter stream and events_dead, by reason."}, []string{"reason"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "journey_writer_duplicates_skipped_total",
			Help: "Redelivered messages whose row was already stored (acked without a second insert)."}),
		redelivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "journey_writer_redelivered_total",
			Help: "Messages received with a delivery count above 1."}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "journey_writer_retries_total",
			Help: "Retries after transient failures, by operation."}, []string{"op"}),
		abandoned: prometheus.NewCounter(prometheus.CounterOpts{Name: "journey_writer_abandoned_total",
			Help: "Messages dropped unacked because their lease could have expired; the server redelivers them."}),
	}
	r.MustRegister(m.rows, m.batches, m.batchRows, m.batchSecs, m.visibleSecs, m.pending, m.ackPending,
		m.dead, m.duplicates, m.redelivered, m.retries, m.abandoned)
	return m
}
