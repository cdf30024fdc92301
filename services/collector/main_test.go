package collector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/natsserver/natstest"
	"github.com/klantreis/journey/pkg/ops"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/services/collector"
)

// Tokens used by the tests: crm may send for crm/* and shop/*, surveys
// only for survey-tool.
const (
	tokenCRM    = "crm-token-0123456789abcdef"
	tokenSurvey = "survey-token-0123456789abcdef"
)

func testSettings() collector.Settings {
	s := collector.DefaultSettings()
	s.Tokens = tokenCRM + "=crm/|shop/;" + tokenSurvey + "=survey-tool"
	s.Rate = 0
	s.AckTimeout = 2 * time.Second
	s.RetryAfter = time.Second
	return s
}

type env struct {
	url     string
	handler http.Handler
	js      jetstream.JetStream
	nc      *nats.Conn
	health  *ops.Health
}

// newEnv starts a collector over real HTTP on a NATS server of its own.
func newEnv(t testing.TB, mutate func(*collector.Settings)) *env {
	t.Helper()
	return newEnvOn(t, natstest.URL(t), mutate)
}

// newEnvOn starts a collector over real HTTP on the NATS server at url.
func newEnvOn(t testing.TB, url string, mutate func(*collector.Settings)) *env {
	t.Helper()
	s := testSettings()
	if mutate != nil {
		mutate(&s)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	conn := stream.Conn{URL: url, ReconnectWait: 100 * time.Millisecond, RequestTimeout: 2 * time.Second}
	nc, _, err := stream.Connect(conn, log)
	if err != nil {
		t.Fatal(err)
	}
	js, err := collector.NewJetStream(nc, conn, s)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := stream.DefaultTopology().Ensure(ctx, js); err != nil {
		t.Fatal(err)
	}
	h := ops.NewHealth()
	c, err := collector.New(s, nc, js, h, log)
	if err != nil {
		t.Fatal(err)
	}
	handler := c.Handler()
	srv := httptest.NewServer(handler)
	t.Cleanup(func() {
		srv.Close()
		nc.Close()
	})
	return &env{url: srv.URL, handler: handler, js: js, nc: nc, health: h}
}

// stored is one message of the touchpoint stream, decoded.
type stored struct {
	Subject string
	Header  nats.Header
	Event   touchpoint.Event
}

// storedEvents reads every message of the touchpoint stream by sequence.
func (e *env) storedEvents(t testing.TB) []stored {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, stream.TouchpointStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []stored
	if info.State.Msgs == 0 {
		return nil
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get seq %d: %v", seq, err)
		}
		ev, err := stream.DecodeMsg(raw.Header, raw.Data)
		if err != nil {
			t.Fatalf("decode seq %d: %v", seq, err)
		}
		out = append(out, stored{Subject: raw.Subject, Header: raw.Header, Event: ev})
	}
	return out
}

// countByID counts stored events per (source, id).
func countByID(evs []stored) map[string]int {
	m := map[string]int{}
	for _, s := range evs {
		m[s.Event.Source+" "+s.Event.ID]++
	}
	return m
}

// post sends a raw request, as curl would.
func post(t testing.TB, url, token string, header map[string]string, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func decodeJSON[T any](t testing.TB, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("body is not the expected JSON: %v\n%s", err, b)
	}
	return v
}

var seq atomic.Int64

// uid returns an id unique in this test binary.
func uid(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano(), seq.Add(1))
}

// structuredOrder is a valid order event in the JSON format.
func structuredOrder(source, id, customer string) string {
	return fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":%q,"type":"io.klantreis.touchpoint.order.v1",
"subject":%q,"time":%q,"datacontenttype":"application/json",
"data":{"order_id":"o-1","status":"placed","amount":"19.95","currency":"EUR","items":2}}`,
		id, source, customer, time.Now().UTC().Format(time.RFC3339Nano))
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
