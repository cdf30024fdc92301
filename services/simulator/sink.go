package simulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/publish"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
)

// Sink is where the simulator sends events. Publish may buffer; Flush
// returns once everything published before it is stored (or the first
// error since the last Flush).
type Sink interface {
	Publish(ctx context.Context, e touchpoint.Event) error
	Flush(ctx context.Context) error
}

// ErrSink marks a failure to deliver events.
var ErrSink = errors.New("simulator: sink")

// JetStreamSink publishes straight to the touchpoint stream with raw
// JetStream async publish in the CloudEvents binary mode, with the
// Nats-Msg-Id deduplication id. At most Window publishes are in flight: past
// that, Publish waits for the oldest acks, so memory stays bounded.
type JetStreamSink struct {
	js      jetstream.JetStream
	window  int
	pending []jetstream.PubAckFuture
	err     error
	// Published and Duplicates count acked events since the start.
	Published, Duplicates int64
}

// NewJetStreamSink returns a sink on js with at most window publishes in
// flight (default 2048 when window <= 0). The window must stay below js's
// own async limit (jetstream.WithPublishAsyncMaxPending, default 4000), or
// publishes stall and fail.
func NewJetStreamSink(js jetstream.JetStream, window int) *JetStreamSink {
	if window <= 0 {
		window = 2048
	}
	return &JetStreamSink{js: js, window: window, pending: make([]jetstream.PubAckFuture, 0, window)}
}

// Publish sends e without waiting for its ack.
func (s *JetStreamSink) Publish(ctx context.Context, e touchpoint.Event) error {
	msg, err := stream.NewFactMsg(&e)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSink, err)
	}
	if len(s.pending) >= s.window {
		if err := s.wait(ctx, s.window/2); err != nil {
			return err
		}
	}
	f, err := s.js.PublishMsgAsync(msg)
	if errors.Is(err, jetstream.ErrTooManyStalledMsgs) && len(s.pending) > 0 {
		// js's limit is lower than the window: drain and try once more.
		if err := s.wait(ctx, len(s.pending)); err != nil {
			return err
		}
		f, err = s.js.PublishMsgAsync(msg)
	}
	if err != nil {
		return fmt.Errorf("%w: publish %s: %w", ErrSink, e.ID, err)
	}
	s.pending = append(s.pending, f)
	return nil
}

// Flush waits for every pending ack.
func (s *JetStreamSink) Flush(ctx context.Context) error {
	return s.wait(ctx, len(s.pending))
}

// wait waits for the oldest n acks and drops them from pending.
func (s *JetStreamSink) wait(ctx context.Context, n int) error {
	for i := range n {
		f := s.pending[i]
		select {
		case ack := <-f.Ok():
			s.Published++
			if ack.Duplicate {
				s.Duplicates++
			}
		case err := <-f.Err():
			if s.err == nil {
				s.err = fmt.Errorf("%w: ack for %s: %w", ErrSink, f.Msg().Header.Get("ce-id"), err)
			}
		case <-ctx.Done():
			s.pending = s.pending[:copy(s.pending, s.pending[i:])]
			return ctx.Err()
		}
	}
	s.pending = s.pending[:copy(s.pending, s.pending[n:])]
	err := s.err
	s.err = nil
	return err
}

// PublisherSink publishes through pkg/publish, as a Go product system does:
// validated, binary mode, deduplication id, retries of transient failures
// with the same id. At most Window results are awaited at once: past that,
// Publish waits for the oldest, so memory stays bounded.
type PublisherSink struct {
	p       *publish.Publisher
	window  int
	pending []*publish.Pending
	err     error
	// Published and Duplicates count stored events since the start.
	Published, Duplicates int64
}

// NewPublisherSink returns a sink on p awaiting at most window results at
// once (default 4096 when window <= 0). The caller closes p.
func NewPublisherSink(p *publish.Publisher, window int) *PublisherSink {
	if window <= 0 {
		window = 4096
	}
	return &PublisherSink{p: p, window: window, pending: make([]*publish.Pending, 0, window)}
}

// Publish hands e to the publisher without waiting for its ack.
func (s *PublisherSink) Publish(ctx context.Context, e touchpoint.Event) error {
	if len(s.pending) >= s.window {
		if err := s.wait(ctx, s.window/2); err != nil {
			return err
		}
	}
	pe, err := s.p.PublishAsync(e)
	if err != nil {
		return fmt.Errorf("%w: publish %s: %w", ErrSink, e.ID, err)
	}
	s.pending = append(s.pending, pe)
	return nil
}

// Flush waits for every pending result.
func (s *PublisherSink) Flush(ctx context.Context) error {
	return s.wait(ctx, len(s.pending))
}

func (s *PublisherSink) wait(ctx context.Context, n int) error {
	for i := range n {
		r, err := s.pending[i].Wait(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			s.pending = s.pending[:copy(s.pending, s.pending[i:])]
			return ctx.Err()
		case err != nil:
			if s.err == nil {
				s.err = fmt.Errorf("%w: %w", ErrSink, err)
			}
		default:
			s.Published++
			if r.Duplicate {
				s.Duplicates++
			}
		}
	}
	s.pending = s.pending[:copy(s.pending, s.pending[n:])]
	err := s.err
	s.err = nil
	return err
}

// CollectorSink sends events to the collector's HTTP endpoint in the
// CloudEvents batch mode (application/cloudevents-batch+json), BatchSize
// events a request, with a bearer token. A 429 or 503 is retried after the
// server's Retry-After (at most MaxRetries times), other failures are
// returned.
type CollectorSink struct {
	url, token string
	client     *http.Client
	batchSize  int
	maxRetries int
	buf        []byte
	n          int
	// Published counts events the collector accepted.
	Published int64
}

// NewCollectorSink returns a sink that posts to url (e.g.
// http://127.0.0.1:8088/v1/events). batchSize defaults to 100.
func NewCollectorSink(url, token string, batchSize int, client *http.Client) *CollectorSink {
	if batchSize <= 0 {
		batchSize = 100
	}
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	return &CollectorSink{url: url, token: token, client: client, batchSize: batchSize, maxRetries: 10}
}

// Publish adds e to the batch and sends the batch when it is full.
func (s *CollectorSink) Publish(ctx context.Context, e touchpoint.Event) error {
	if s.n == 0 {
		s.buf = append(s.buf[:0], '[')
	} else {
		s.buf = append(s.buf, ',')
	}
	s.buf = e.AppendStructured(s.buf)
	s.n++
	if s.n >= s.batchSize {
		return s.Flush(ctx)
	}
	return nil
}

// Flush sends the partial batch, if any.
func (s *CollectorSink) Flush(ctx context.Context) error {
	if s.n == 0 {
		return nil
	}
	body := append(s.buf, ']')
	n := s.n
	s.n = 0
	for attempt := 0; ; attempt++ {
		retry, err := s.post(ctx, body)
		if err == nil {
			s.Published += int64(n)
			return nil
		}
		if retry == 0 || attempt >= s.maxRetries {
			return err
		}
		select {
		case <-time.After(retry):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// post sends one batch; on a retryable failure it returns how long to wait.
func (s *CollectorSink) post(ctx context.Context, body []byte) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrSink, err)
	}
	req.Header.Set("Content-Type", "application/cloudevents-batch+json")
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return time.Second, fmt.Errorf("%w: post %s: %w", ErrSink, s.url, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode/100 == 2:
		// A batch answer lists refusals per event; the simulator's events
		// are valid, so any refusal is a bug worth stopping for.
		var res struct {
			Rejected int `json:"rejected"`
			Results  []struct {
				ID      string `json:"id"`
				Status  string `json:"status"`
				Message string `json:"message"`
			} `json:"results"`
		}
		if json.Unmarshal(msg, &res) == nil && res.Rejected > 0 {
			for _, r := range res.Results {
				if r.Status == "rejected" {
					return 0, fmt.Errorf("%w: collector rejected %d events, e.g. %s: %s", ErrSink, res.Rejected, r.ID, r.Message)
				}
			}
			return 0, fmt.Errorf("%w: collector rejected %d events", ErrSink, res.Rejected)
		}
		return 0, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		wait := time.Second
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs >= 0 {
			wait = time.Duration(secs) * time.Second
		}
		return max(wait, 100*time.Millisecond), fmt.Errorf("%w: collector answered %s: %s", ErrSink, resp.Status, bytes.TrimSpace(msg))
	default:
		return 0, fmt.Errorf("%w: collector answered %s: %s", ErrSink, resp.Status, bytes.TrimSpace(msg))
	}
}
