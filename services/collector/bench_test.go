package collector_test

import (
	"bytes"
	"io"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/services/collector"
)

// Benchmarks run the collector over real HTTP on the package's embedded
// NATS server. Figures and how to run them: docs/perf-collector.md.

const batchSize = 100

var benchSeq atomic.Int64

// appendEvent appends one structured order event with a fresh id; the
// same bytes feed the collector and (decoded) the raw baseline.
func appendEvent(dst []byte, n int64) []byte {
	dst = append(dst, `{"specversion":"1.0","id":"bench-`...)
	dst = strconv.AppendInt(dst, n, 10)
	dst = append(dst, `","source":"crm/bench","type":"io.klantreis.touchpoint.order.v1","subject":"cust-`...)
	dst = strconv.AppendInt(dst, n%5000, 10)
	dst = append(dst, `","time":"2026-01-02T03:04:05.678Z","datacontenttype":"application/json","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","data":{"order_id":"o-`...)
	dst = strconv.AppendInt(dst, n, 10)
	return append(dst, `","status":"placed","amount":"129.95","currency":"EUR","items":3,"account_id":"acct-17","channel":"web"}}`...)
}

func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}}
}

func benchSettings(s *collector.Settings) {
	s.Rate = 0
	s.MaxConcurrent = 4096
	s.AckTimeout = 10 * time.Second
}

func postBody(b *testing.B, c *http.Client, url, ct string, body []byte) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		b.Error(err)
		return
	}
	req.Header.Set("Authorization", "Bearer "+tokenCRM)
	req.Header.Set("Content-Type", ct)
	resp, err := c.Do(req)
	if err != nil {
		b.Error(err)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b.Errorf("status %d", resp.StatusCode)
	}
}

// BenchmarkBatchIngest compares batches of 100 events through the
// collector (many concurrent connections) with the raw JetStream async
// publish of the same events by as many concurrent publishers, each
// waiting for its 100 acks, in the same run. Goal: collector >= 0.7x.
func BenchmarkBatchIngest(b *testing.B) {
	b.Run("collector", func(b *testing.B) {
		e := newEnv(b, benchSettings)
		client := benchClient()
		url := e.url + "/v1/events"
		b.SetParallelism(16)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			body := make([]byte, 0, 64<<10)
			for pb.Next() {
				body = append(body[:0], '[')
				for i := 0; i < batchSize; i++ {
					if i > 0 {
						body = append(body, ',')
					}
					body = appendEvent(body, benchSeq.Add(1))
				}
				body = append(body, ']')
				postBody(b, client, url, "application/cloudevents-batch+json", body)
			}
		})
		b.ReportMetric(float64(b.N*batchSize)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("jetstream", func(b *testing.B) {
		e := newEnv(b, benchSettings)
		b.SetParallelism(16)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]byte, 0, 1024)
			futures := make([]jetstream.PubAckFuture, 0, batchSize)
			for pb.Next() {
				publishRawBatch(b, e.js, buf, futures[:0], batchSize)
			}
		})
		b.ReportMetric(float64(b.N*batchSize)/b.Elapsed().Seconds(), "events/s")
	})
}

// BenchmarkSingleEvent measures single-event requests per second with
// many concurrent connections (closed loop).
func BenchmarkSingleEvent(b *testing.B) {
	e := newEnv(b, benchSettings)
	client := benchClient()
	url := e.url + "/v1/events"
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		body := make([]byte, 0, 1024)
		for pb.Next() {
			body = appendEvent(body[:0], benchSeq.Add(1))
			postBody(b, client, url, "application/cloudevents+json", body)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkSingleEventLatency finds the maximum single-event rate (closed
// loop, 2s), then offers half of it open loop for 3s and reports the
// latency to 202 measured from each request's scheduled start (so a stall
// is not hidden by the generator waiting). Run it with -benchtime=1x.
func BenchmarkSingleEventLatency(b *testing.B) {
	e := newEnv(b, benchSettings)
	client := benchClient()
	url := e.url + "/v1/events"
	send := func() bool {
		body := appendEvent(make([]byte, 0, 1024), benchSeq.Add(1))
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tokenCRM)
		req.Header.Set("Content-Type", "application/cloudevents+json")
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusAccepted
	}
	for i := 0; i < b.N; i++ {
		// 1. The maximum, closed loop.
		var done atomic.Int64
		stop := time.Now().Add(2 * time.Second)
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < 32; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(stop) {
					if send() {
						done.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		maxRate := float64(done.Load()) / time.Since(start).Seconds()

		// 2. Half of it, open loop.
		rate := maxRate / 2
		interval := time.Duration(float64(time.Second) / rate)
		n := int(3 * rate)
		lat := make([]time.Duration, n)
		failed := atomic.Int64{}
		sem := make(chan struct{}, 512)
		t0 := time.Now()
		for k := 0; k < n; k++ {
			due := t0.Add(time.Duration(k) * interval)
			time.Sleep(time.Until(due))
			sem <- struct{}{}
			wg.Add(1)
			go func(k int, due time.Time) {
				defer wg.Done()
				defer func() { <-sem }()
				if !send() {
					failed.Add(1)
				}
				lat[k] = time.Since(due)
			}(k, due)
		}
		wg.Wait()
		if f := failed.Load(); f > 0 {
			b.Fatalf("%d of %d requests failed at half load", f, n)
		}
		sort.Slice(lat, func(x, y int) bool { return lat[x] < lat[y] })
		b.ReportMetric(maxRate, "max-req/s")
		b.ReportMetric(rate, "offered-req/s")
		b.ReportMetric(float64(lat[n/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[n*99/100].Microseconds())/1000, "p99-ms")
	}
}

// BenchmarkBatchIngestRatio measures the same comparison as
// BenchmarkBatchIngest but alternates the two sides in rounds of 2s (3
// rounds each), so that load from elsewhere on the machine hits both alike,
// and reports the ratio collector/jetstream. Run it with -benchtime=1x.
func BenchmarkBatchIngestRatio(b *testing.B) {
	e := newEnv(b, benchSettings)
	client := benchClient()
	url := e.url + "/v1/events"
	const workers = 32
	viaCollector := func() {
		body := make([]byte, 0, 64<<10)
		body = append(body, '[')
		for i := 0; i < batchSize; i++ {
			if i > 0 {
				body = append(body, ',')
			}
			body = appendEvent(body, benchSeq.Add(1))
		}
		body = append(body, ']')
		postBody(b, client, url, "application/cloudevents-batch+json", body)
	}
	viaJetStream := func() {
		publishRawBatch(b, e.js, make([]byte, 0, 1024), make([]jetstream.PubAckFuture, 0, batchSize), batchSize)
	}
	round := func(batch func()) (events int64, elapsed time.Duration) {
		var n atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		stop := start.Add(2 * time.Second)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(stop) {
					batch()
					n.Add(batchSize)
				}
			}()
		}
		wg.Wait()
		return n.Load(), time.Since(start)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var cn, jn int64
		var ct, jt time.Duration
		for r := 0; r < 3; r++ {
			n, d := round(viaCollector)
			cn, ct = cn+n, ct+d
			n, d = round(viaJetStream)
			jn, jt = jn+n, jt+d
		}
		cRate, jRate := float64(cn)/ct.Seconds(), float64(jn)/jt.Seconds()
		b.ReportMetric(cRate, "collector-events/s")
		b.ReportMetric(jRate, "jetstream-events/s")
		b.ReportMetric(cRate/jRate, "ratio")
	}
}

// publishRawBatch is the baseline the collector is measured against: n
// events decoded from the same bytes the collector gets (so both sides
// start from the same input and publish the same binary-mode message),
// published async straight to JetStream, every ack awaited. buf and
// futures are scratch space.
func publishRawBatch(b *testing.B, js jetstream.JetStream, buf []byte, futures []jetstream.PubAckFuture, n int) {
	for i := 0; i < n; i++ {
		buf = appendEvent(buf[:0], benchSeq.Add(1))
		ev, err := touchpoint.UnmarshalStructured(buf)
		if err != nil {
			b.Error(err)
			return
		}
		msg, err := stream.NewFactMsg(&ev)
		if err != nil {
			b.Error(err)
			return
		}
		f, err := js.PublishMsgAsync(msg)
		if err != nil {
			b.Error(err)
			return
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			b.Error(err)
		}
	}
}
