package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/natsserver/natstest"
	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/opsstatus"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/services/api"
)

func authGet(t *testing.T, url, token string) (int, string) {
	t.Helper()
	return authDo(t, "GET", url, token, "")
}

// authPost posts a JSON body.
func authPost(t *testing.T, url, token, body string) (int, string) {
	t.Helper()
	return authDo(t, "POST", url, token, body)
}

// authDo sends a request with a bearer token (none if empty body: no
// Content-Type) and returns the status and the body.
func authDo(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// startJetStream starts a NATS server of the test's own and connects to it.
func startJetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	ns := natstest.Start(t)
	t.Cleanup(ns.Shutdown)
	nc, js, err := stream.Connect(stream.Conn{URL: ns.ClientURL()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return js
}

// The ops status as an operator sees it through the API, the /ops page and
// /metrics: a consumer's lag read with the api's read-only NATS user, the
// dead letters per consumer, the last rebuild and the recent actions of the
// audit trail; a read token is refused.
func TestOpsStatusThroughTheAPI(t *testing.T) {
	ctx := context.Background()
	ns := natstest.StartSecure(t, stream.DefaultAccessNames())
	nc, admin, err := stream.Connect(ns.Conn(stream.UserAdmin), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := stream.DefaultTopology().Ensure(ctx, admin); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"a", "b", "c", "d", "e"} {
		if _, err := admin.Publish(ctx, stream.PublishSubject("visit", c), []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.Publish(ctx, stream.DeadLetterSubject("writer"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	ts, _ := admin.Stream(ctx, stream.TouchpointStream)
	cons, err := ts.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "writer", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, _ := cons.Fetch(2, jetstream.FetchMaxWait(2*time.Second))
	for m := range batch.Messages() {
		_ = m.DoubleAck(ctx)
	}

	db := warehousetest.Open(t)
	for _, a := range []struct{ at, action string }{{"2026-12-01 10:00:00", "rebuild.swap"}, {"2026-12-02 09:00:00", "deadletters.redrive"}} {
		at, _ := time.Parse(time.DateTime, a.at)
		if err := db.InsertRow(ctx, `INSERT INTO ops_audit (at, event_id, actor, action, selection, counts, outcome, error)`,
			at, "ev-"+a.action, "os:ops", a.action, "{}", `{"events":3}`, "ok", ""); err != nil {
			t.Fatal(err)
		}
	}
	hs, srv, _ := serve(t, db, api.Settings{Tokens: []string{"adm-token=admin", "rd-token=read"}})
	if code, body := authGet(t, hs.URL+"/v1/ops/status", "adm-token"); code != 200 || !strings.Contains(body, "nats_error") {
		t.Errorf("before the first sample: %d %s, want 200 with nats_error", code, body)
	}
	nc2, apiJS, err := stream.Connect(ns.Conn(stream.UserAPI), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	opsCtx, stop := context.WithCancel(ctx)
	defer stop()
	go srv.RunOps(opsCtx, opsstatus.Reader{JS: apiJS, Streams: []string{stream.TouchpointStream, stream.DerivedStream, stream.DeadLetterStream},
		DeadLetterStream: stream.DeadLetterStream}, 100*time.Millisecond)

	var st api.OpsStatus
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := authGet(t, hs.URL+"/v1/ops/status", "adm-token")
		if code != 200 {
			t.Fatalf("status: %d %s", code, body)
		}
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatal(err)
		}
		if st.NATS != nil || time.Now().After(deadline) {
			t.Logf("status: %s", body)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st.NATS == nil {
		t.Fatalf("no NATS sample: %s", st.NATSError)
	}
	if len(st.NATS.Consumers) != 1 || st.NATS.Consumers[0].Name != "writer" || st.NATS.Consumers[0].Lag != 3 {
		t.Errorf("consumers %+v, want writer with lag 3", st.NATS.Consumers)
	}
	if st.NATS.DeadLetters["writer"] != 1 {
		t.Errorf("dead letters %v, want writer 1", st.NATS.DeadLetters)
	}
	if st.LastRebuild == nil || st.LastRebuild.Action != "rebuild.swap" || len(st.RecentActions) != 2 || st.RecentActions[0].Action != "deadletters.redrive" {
		t.Errorf("last rebuild %+v, recent %+v", st.LastRebuild, st.RecentActions)
	}
	if code, _ := authGet(t, hs.URL+"/v1/ops/status", "rd-token"); code != 403 {
		t.Errorf("a read token got %d, want 403", code)
	}
	if code, body := authGet(t, hs.URL+"/ops", "adm-token"); code != 200 || !strings.Contains(body, "rebuild.swap") || !strings.Contains(body, "<td>writer</td><td>3</td>") {
		t.Errorf("/ops page: %d\n%s", code, body)
	}
	if code, _ := authGet(t, hs.URL+"/ops", "rd-token"); code != 403 {
		t.Errorf("/ops with a read token: %d, want 403", code)
	}
	_, metrics := authGet(t, hs.URL+"/metrics", "")
	if !strings.Contains(metrics, `journey_ops_consumer_lag{consumer="writer",stream="TOUCHPOINTS"} 3`) ||
		!strings.Contains(metrics, `journey_ops_dead_letters{consumer="writer"} 1`) {
		t.Errorf("/metrics lacks the ops gauges:\n%s", grepLines(metrics, "journey_ops_"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
