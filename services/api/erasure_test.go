package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/natsserver/natstest"
	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/ops"
	"github.com/klantreis/journey/pkg/privacy"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/services/api"
)

func call(t *testing.T, h http.Handler, method, path, token string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// DELETE /v1/customers/{id} with an admin token erases the customer in
// the background; GET /v1/erasures/{id} serves the receipt until it is
// complete, after which the customer is gone from the API too. A read
// token is refused, and an API without erasure says how to erase.
func TestDeleteCustomerErasesAndServesTheReceipt(t *testing.T) {
	db := warehousetest.Open(t)
	loadFixture(t, db)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nc, js, err := stream.Connect(stream.Conn{URL: natstest.URL(t), RequestTimeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := stream.DefaultTopology().Ensure(ctx, js); err != nil {
		t.Fatal(err)
	}
	svc, err := privacy.Open(ctx, js, db, privacy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := api.NewServer(api.Settings{Tokens: []string{"admin-token-0123456789=admin", "read-token-0123456789=read"}}, ops.NewHealth(), nil, log)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetStore(db)
	h := srv.Handler()
	if rec := call(t, h, "DELETE", "/v1/customers/"+c1, "admin-token-0123456789"); rec.Code != http.StatusServiceUnavailable ||
		!strings.Contains(rec.Body.String(), "journeyctl erase") || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Errorf("without an eraser: %d %s", rec.Code, rec.Body.String())
	}
	srv.SetEraser(ctx, svc)
	if rec := call(t, h, "DELETE", "/v1/customers/"+c1, "read-token-0123456789"); rec.Code != http.StatusForbidden {
		t.Errorf("read token: %d %s", rec.Code, rec.Body.String())
	}
	if rec := call(t, h, "GET", "/v1/customers/"+c1, "read-token-0123456789"); rec.Code != http.StatusOK {
		t.Fatalf("before: %d", rec.Code)
	}
	rec := call(t, h, "DELETE", "/v1/customers/"+c1, "admin-token-0123456789")
	if rec.Code != http.StatusAccepted {
		t.Fatalf("delete: %d %s", rec.Code, rec.Body.String())
	}
	loc := rec.Header().Get("Location")
	if !strings.HasPrefix(loc, "/v1/erasures/") {
		t.Fatalf("Location %q", loc)
	}
	var rc privacy.Receipt
	// Mutations wait for a free thread of ClickHouse's background pool,
	// which a shared server may keep busy for a while.
	start := time.Now()
	deadline := start.Add(3 * time.Minute)
	for {
		rec = call(t, h, "GET", loc, "admin-token-0123456789")
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", loc, rec.Code, rec.Body.String())
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &rc); err != nil {
			t.Fatal(err)
		}
		if rc.Completed != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if rc.Phase != "complete" || rc.Completed == nil || rc.Started.After(*rc.Completed) {
		t.Fatalf("receipt after %s: %s", time.Since(start), rec.Body.String())
	}
	t.Logf("erasure complete after %s", time.Since(start))
	counts := map[string]uint64{}
	for _, s := range rc.Stores {
		counts[s.Store] = s.Count
	}
	if counts["table events"] == 0 || counts["table customer_state"] == 0 || counts["table satisfaction_responses"] == 0 {
		t.Errorf("receipt counts %v: the fixture has c1's events, state and answers", counts)
	}
	if strings.Contains(rec.Body.String(), c1) {
		t.Errorf("the receipt names the customer: %s", rec.Body.String())
	}
	if rec := call(t, h, "GET", "/v1/customers/"+c1, "read-token-0123456789"); rec.Code != http.StatusNotFound {
		t.Errorf("after the erasure GET /v1/customers/%s: %d", c1, rec.Code)
	}
	if rec := call(t, h, "GET", "/v1/customers/"+c2, "read-token-0123456789"); rec.Code != http.StatusOK {
		t.Errorf("another customer after the erasure: %d", rec.Code)
	}
	if rec := call(t, h, "GET", "/v1/erasures/er-nothing", "admin-token-0123456789"); rec.Code != http.StatusNotFound {
		t.Errorf("unknown erasure: %d %s", rec.Code, rec.Body.String())
	}
	if rec := call(t, h, "GET", loc, "read-token-0123456789"); rec.Code != http.StatusForbidden {
		t.Errorf("receipt with a read token: %d", rec.Code)
	}
}
