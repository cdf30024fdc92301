package simulator_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fastjson"

	"github.com/klantreis/journey/internal/natsserver/natstest"
	"github.com/klantreis/journey/pkg/publish"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/services/simulator"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// natsEnv is a NATS server of the test's own, with the streams created.
type natsEnv struct {
	url string
	js  jetstream.JetStream
}

func conn(url string) stream.Conn {
	return stream.Conn{URL: url, ReconnectWait: 100 * time.Millisecond, RequestTimeout: 5 * time.Second}
}

// freshStreams starts a server for the test and creates the streams, so the
// code under test only updates them.
func freshStreams(t testing.TB) natsEnv {
	t.Helper()
	url := natstest.URL(t)
	nc, js, err := stream.Connect(conn(url), quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if err := stream.DefaultTopology().Ensure(context.Background(), js); err != nil {
		t.Fatal(err)
	}
	return natsEnv{url: url, js: js}
}

func settings() simulator.Settings {
	return simulator.Settings{Customers: 200, Seed: 11, B2BShare: 0.3, Sink: "nats", Source: "simulator",
		BatchSize: 100, FlushInterval: 50 * time.Millisecond}
}

func config(ns natsEnv, s simulator.Settings) simulator.Config {
	return simulator.Config{
		NATS:      conn(ns.url),
		Stream:    stream.DefaultTopology(),
		Simulator: s,
	}
}

// readAll reads every message of the touchpoint stream, decoded.
func readAll(t *testing.T, js jetstream.JetStream, want int) []touchpoint.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, stream.TouchpointStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []touchpoint.Event
	for len(out) < want {
		batch, err := c.Fetch(min(1000, want-len(out)), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			e, err := stream.DecodeMsg(m.Headers(), m.Data())
			if err != nil {
				t.Fatalf("stored message does not decode: %v", err)
			}
			out = append(out, e)
		}
		if got == 0 {
			t.Fatalf("stream holds %d events, want %d", len(out), want)
		}
	}
	return out
}

// TestBackfillIntoStream: a backfill run with a limit lands exactly its
// events in the stream, with past times, valid, on each customer's subject;
// a second run with the same seed is deduplicated by message id.
func TestBackfillIntoStream(t *testing.T) {
	ns := freshStreams(t)
	js := ns.js
	s := settings()
	s.Backfill = 120 * 24 * time.Hour
	s.Limit = 3000
	ctx := context.Background()
	before := time.Now()
	if err := simulator.Run(ctx, config(ns, s), quiet()); err != nil {
		t.Fatal(err)
	}
	info, err := js.Stream(ctx, stream.TouchpointStream)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.CachedInfo().State.Msgs; got != 3000 {
		t.Fatalf("stream holds %d messages, want 3000", got)
	}
	evs := readAll(t, js, 3000)
	for _, e := range evs {
		if _, err := touchpoint.Validate(&e, time.Now()); err != nil {
			t.Fatalf("stored event invalid: %v", err)
		}
		if !e.Time.Before(before) {
			t.Fatalf("backfilled event at %s is not in the past", e.Time)
		}
		if e.Time.Before(before.Add(-s.Backfill - time.Hour)) {
			t.Fatalf("backfilled event at %s is older than the backfill", e.Time)
		}
	}
	// Same seed again: the same (source, id) pairs, which the stream's
	// duplicate window drops.
	s2 := s
	if err := simulator.Run(ctx, config(ns, s2), quiet()); err != nil {
		t.Fatal(err)
	}
	info, _ = js.Stream(ctx, stream.TouchpointStream)
	if got := info.CachedInfo().State.Msgs; got != 3000 {
		t.Fatalf("after a rerun with the same seed the stream holds %d messages, want 3000 (deduplicated)", got)
	}
	// Per-customer subject filter: one customer's events only.
	cust := evs[0].Subject
	n := 0
	for _, e := range evs {
		if e.Subject == cust {
			n++
		}
	}
	c, err := js.OrderedConsumer(ctx, stream.TouchpointStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{stream.CustomerFilter(cust)}})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.Fetch(n+10, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for m := range batch.Messages() {
		e, _ := stream.DecodeMsg(m.Headers(), m.Data())
		if e.Subject != cust {
			t.Fatalf("customer filter returned %s's event", e.Subject)
		}
		got++
	}
	if got != n {
		t.Fatalf("customer %s: %d events by subject filter, want %d", cust, got, n)
	}
}

// TestLiveRate: live events carry the wall clock and the pace follows Rate.
func TestLiveRate(t *testing.T) {
	ns := freshStreams(t)
	js := ns.js
	s := settings()
	s.Rate = 200
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	if err := simulator.Run(ctx, config(ns, s), quiet()); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	info, err := js.Stream(context.Background(), stream.TouchpointStream)
	if err != nil {
		t.Fatal(err)
	}
	got := int(info.CachedInfo().State.Msgs)
	// The limiter allows at most Rate*elapsed plus its burst (a tenth of a
	// second); a loaded machine may send fewer, but not none.
	if limit := int(200*elapsed.Seconds()) + 20; got > limit || got < 20 {
		t.Fatalf("%d events in %s at 200/s; want between 20 and %d", got, elapsed, limit)
	}
	for _, e := range readAll(t, js, got) {
		if e.Time.Before(start.Add(-time.Millisecond)) || e.Time.After(time.Now()) {
			t.Fatalf("live event time %s outside the run [%s, now]", e.Time, start)
		}
	}
}

// TestCollectorSinkRefusal: a 202 that lists refused events is an error.
func TestCollectorSinkRefusal(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"accepted":1,"rejected":1,"results":[{"status":"accepted"},{"id":"x1","status":"rejected","message":"data.score must be at most 10"}]}`)
	}))
	defer srv.Close()
	sink := simulator.NewCollectorSink(srv.URL, "", 10, srv.Client())
	g := simulator.NewGenerator(simulator.Options{Seed: 5, Start: time.Now().Add(-time.Hour)})
	ctx := context.Background()
	for _, e := range g.Generate(2) {
		if err := sink.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	err := sink.Flush(ctx)
	if !errors.Is(err, simulator.ErrSink) || !strings.Contains(err.Error(), "x1") {
		t.Fatalf("Flush = %v, want ErrSink naming the refused event", err)
	}
}

// TestCollectorSink: batches are CloudEvents batch mode with the token, and
// a 503 with Retry-After is retried.
func TestCollectorSink(t *testing.T) {
	var mu sync.Mutex
	var got []touchpoint.Event
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 2 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/cloudevents-batch+json" {
			t.Errorf("Content-Type %q", ct)
		}
		if a := r.Header.Get("Authorization"); a != "Bearer s3cret" {
			t.Errorf("Authorization %q", a)
		}
		body, _ := io.ReadAll(r.Body)
		v, err := fastjson.ParseBytes(body)
		if err != nil {
			t.Errorf("batch is not JSON: %v", err)
			return
		}
		for _, item := range v.GetArray() {
			e, err := touchpoint.FromJSONValue(item)
			if err != nil {
				t.Errorf("batch item does not decode: %v", err)
				continue
			}
			got = append(got, e)
		}
		w.WriteHeader(http.StatusAccepted)
		json.NewEncoder(w).Encode(map[string]any{"accepted": len(v.GetArray())})
	}))
	defer srv.Close()

	sink := simulator.NewCollectorSink(srv.URL+"/v1/events", "s3cret", 100, srv.Client())
	g := simulator.NewGenerator(simulator.Options{Seed: 5, Start: time.Now().Add(-30 * 24 * time.Hour)})
	sent := g.Generate(250)
	ctx := context.Background()
	for _, e := range sent {
		if err := sink.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := sink.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 4 {
		t.Fatalf("%d requests for 250 events in batches of 100 with one 503, want 4", calls)
	}
	if len(got) != len(sent) || sink.Published != 250 {
		t.Fatalf("collector received %d events (sink counted %d), want %d", len(got), sink.Published, len(sent))
	}
	for i := range sent {
		if got[i].ID != sent[i].ID || got[i].Subject != sent[i].Subject || !got[i].Time.Equal(sent[i].Time) || string(got[i].Data) != string(sent[i].Data) {
			t.Fatalf("event %d changed on the way:\n%+v\n%+v", i, sent[i], got[i])
		}
	}
}

// BenchmarkSink: the simulator's two NATS paths with pre-generated events
// into a file-backed stream on the embedded server, in one run: raw
// JetStream async publish (the baseline) and pkg/publish. Compare their
// events/s. Run: go test -run '^$' -bench Sink ./services/simulator.
func BenchmarkSink(b *testing.B) {
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		sink func(jetstream.JetStream) (simulator.Sink, func())
	}{
		{"jetstream", func(js jetstream.JetStream) (simulator.Sink, func()) {
			return simulator.NewJetStreamSink(js, 0), func() {}
		}},
		{"publisher", func(js jetstream.JetStream) (simulator.Sink, func()) {
			p, err := publish.New(js)
			if err != nil {
				b.Fatal(err)
			}
			return simulator.NewPublisherSink(p, 0), func() { p.Close(ctx) }
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			js := freshStreams(b).js
			// Enough customers and years that b.N events stay in the past.
			evs := simulator.NewGenerator(simulator.Options{Seed: uint64(time.Now().UnixNano()), Customers: 100000,
				Start: time.Now().Add(-3 * 365 * 24 * time.Hour)}).Generate(b.N)
			if last := evs[len(evs)-1].Time; last.After(time.Now()) {
				b.Fatalf("pre-generated events reach %s, in the future", last)
			}
			sink, done := bc.sink(js)
			defer done()
			b.ResetTimer()
			for i := range evs {
				if err := sink.Publish(ctx, evs[i]); err != nil {
					b.Fatal(err)
				}
			}
			if err := sink.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// TestJetStreamSinkBurst: a burst far beyond JetStream's async limit (4000
// pending by default), with a window above it, neither stalls nor loses.
func TestJetStreamSinkBurst(t *testing.T) {
	js := freshStreams(t).js
	ctx := context.Background()
	evs := simulator.NewGenerator(simulator.Options{Seed: 77, Start: time.Now().Add(-365 * 24 * time.Hour)}).Generate(20000)
	sink := simulator.NewJetStreamSink(js, 6000)
	for i := range evs {
		if err := sink.Publish(ctx, evs[i]); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if err := sink.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := js.Stream(ctx, stream.TouchpointStream)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.CachedInfo().State.Msgs; got != 20000 || sink.Published != 20000 {
		t.Fatalf("stream holds %d, sink counted %d acks; want 20000", got, sink.Published)
	}
}
