package collector

import (
	"errors"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
)

// publish sends events (already validated) to JetStream, waits for every
// ack and records each outcome in results[idx[i]]. An event counts as stored
// only with an ack; anything else (connection down, stalled, timeout, an
// error from the server) marks it failed with 503, so no 2xx is ever
// given for an event that is not in the stream.
func (c *Collector) publish(events []*touchpoint.Event, results []Result, idx []int) {
	if len(events) == 0 {
		return
	}
	if !c.nc.IsConnected() {
		for i, e := range events {
			c.fail(e, &results[idx[i]], ErrNotConnected)
		}
		c.logFailures(results, idx)
		return
	}
	start := time.Now()
	futures := make([]jetstream.PubAckFuture, len(events))
	for i, e := range events {
		msg, err := stream.NewFactMsg(e)
		if err == nil {
			futures[i], err = c.js.PublishMsgAsync(msg)
		}
		if err != nil {
			c.fail(e, &results[idx[i]], err)
		}
	}
	// The JetStream context times acks out after AckTimeout itself; this
	// timer is the backstop should a future never resolve.
	timer := time.NewTimer(c.s.AckTimeout + time.Second)
	defer timer.Stop()
	expired := false
	for i, f := range futures {
		if f == nil {
			continue
		}
		res := &results[idx[i]]
		if expired {
			c.fail(events[i], res, jetstream.ErrAsyncPublishTimeout)
			continue
		}
		select {
		case ack := <-f.Ok():
			c.stored(events[i], res, ack)
		case err := <-f.Err():
			c.fail(events[i], res, err)
		case <-timer.C:
			expired = true
			c.fail(events[i], res, jetstream.ErrAsyncPublishTimeout)
		}
	}
	c.m.publish.Observe(time.Since(start).Seconds())
	c.logFailures(results, idx)
}

// logFailures logs once per request, not once per event, so an outage
// does not flood the log.
func (c *Collector) logFailures(results []Result, idx []int) {
	n, first := 0, ""
	for _, i := range idx {
		if results[i].Status == StatusFailed {
			if n == 0 {
				first = results[i].Message
			}
			n++
		}
	}
	if n > 0 {
		c.log.Warn("events not stored", "count", n, "of", len(idx), "first", first)
	}
}

func (c *Collector) stored(e *touchpoint.Event, res *Result, ack *jetstream.PubAck) {
	res.Stream, res.Seq, res.Duplicate = ack.Stream, ack.Sequence, ack.Duplicate
	res.Status = StatusAccepted
	if ack.Duplicate {
		res.Status = StatusDuplicate
	}
	c.m.events.WithLabelValues(kindLabel(e), res.Status, "").Inc()
}

func (c *Collector) fail(e *touchpoint.Event, res *Result, err error) {
	code, reason, msg := http.StatusServiceUnavailable, ReasonUnavailable, "the event was not stored: "+err.Error()+"; resend it with the same id"
	if errors.Is(err, nats.ErrMaxPayload) {
		code, reason, msg = http.StatusRequestEntityTooLarge, ReasonTooLarge, "the event exceeds the broker's message size"
		res.Status = StatusRejected
	} else {
		res.Status = StatusFailed
	}
	res.Code, res.Error, res.Message = code, reason, msg
	outcome := res.Status
	c.m.events.WithLabelValues(kindLabel(e), outcome, reason).Inc()
}
