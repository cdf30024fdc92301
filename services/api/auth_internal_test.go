package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klantreis/journey/pkg/ops"
)

// TestScopes: the scope checks of the route table, over HTTP. The API has
// no admin route of its own yet (erasure adds them), so the test adds
// one with the access level those routes use; everything else is the
// server's own code.
func TestScopes(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(file, []byte("# ops\nfile-admin-token=admin\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(Settings{Tokens: []string{"read-token", "read2-token=read", "admin-token=admin"}, TokensFile: file},
		ops.NewHealth(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s.routes = append(s.routes, route{Route{"DELETE", "/v1/scope-test"}, "DELETE /v1/scope-test", adminAPI,
		func(w http.ResponseWriter, r *http.Request) error { w.WriteHeader(http.StatusNoContent); return nil }})
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	do := func(method, path, auth string) (*http.Response, Problem) {
		t.Helper()
		req, _ := http.NewRequest(method, hs.URL+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var p Problem
		if res.Header.Get("Content-Type") == "application/problem+json" {
			if err := json.NewDecoder(res.Body).Decode(&p); err != nil {
				t.Fatal(err)
			}
		}
		return res, p
	}
	cases := []struct {
		method, path, token string
		want                int
	}{
		{"DELETE", "/v1/scope-test", "", 401},
		{"DELETE", "/v1/scope-test", "wrong", 401},
		{"DELETE", "/v1/scope-test", "read-token", 403},
		{"DELETE", "/v1/scope-test", "read2-token", 403},
		{"DELETE", "/v1/scope-test", "admin-token", 204},
		{"DELETE", "/v1/scope-test", "file-admin-token", 204},
		{"GET", "/v1/metrics/nps", "", 401},
		// No store: past the scope check a read route answers 503.
		{"GET", "/v1/metrics/nps", "read-token", 503},
		{"GET", "/v1/metrics/nps", "admin-token", 503},
	}
	for _, c := range cases {
		res, p := do(c.method, c.path, c.token)
		if res.StatusCode != c.want {
			t.Errorf("%s %s with %q: %d, want %d", c.method, c.path, c.token, res.StatusCode, c.want)
			continue
		}
		switch c.want {
		case 401:
			if p.Status != 401 || !strings.Contains(res.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s %s: 401 without a problem or challenge: %+v %v", c.method, c.path, p, res.Header)
			}
		case 403:
			if p.Status != 403 || p.Type != ProblemBase+"forbidden" || !strings.Contains(p.Detail, "admin scope") {
				t.Errorf("%s %s: 403 problem %+v", c.method, c.path, p)
			}
		}
	}
	if _, err := NewServer(Settings{Tokens: []string{"x=root"}}, ops.NewHealth(), nil, nil); err == nil || !strings.Contains(err.Error(), `scope "root"`) {
		t.Errorf("unknown scope: %v", err)
	}
	if _, err := NewServer(Settings{Tokens: []string{"=admin"}}, ops.NewHealth(), nil, nil); err == nil {
		t.Error("empty token accepted")
	}
}

// TestSessionCookie: a login cookie carries its scope, expires, cannot be
// forged or altered, and does not hold the token.
func TestSessionCookie(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ss := newSessions(func() time.Time { return now })
	toks, err := parseTokens([]string{"read-token", "admin-token=admin"}, "")
	if err != nil {
		t.Fatal(err)
	}
	c := ss.issue(toks[0])
	if strings.Contains(c.Value, "read-token") || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
		t.Fatalf("cookie %+v", c)
	}
	if sc, ok := ss.verify(c.Value, toks); !ok || sc != ScopeRead {
		t.Fatalf("fresh cookie: %q %v", sc, ok)
	}
	forged := "admin" + strings.TrimPrefix(c.Value, "read")
	if _, ok := ss.verify(forged, toks); ok {
		t.Fatal("a read cookie relabelled admin was accepted")
	}
	if _, ok := ss.verify(c.Value, toks[1:]); ok {
		t.Fatal("a cookie outlived its token's removal")
	}
	other := newSessions(ss.now)
	if _, ok := other.verify(c.Value, toks); ok {
		t.Fatal("another process's key accepted the cookie")
	}
	now = now.Add(sessionTTL)
	if _, ok := ss.verify(c.Value, toks); ok {
		t.Fatal("an expired cookie was accepted")
	}
}
