package api_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/tlstest"
	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/tlsconfig"
	"github.com/klantreis/journey/services/api"
)

// TestDashboardLogin: a browser without credentials is sent to /login; a
// wrong token is refused there; the right one sets an HttpOnly cookie
// (without the token in it) that opens the dashboard and GET /v1, and
// only on this server's paths.
func TestDashboardLogin(t *testing.T) {
	hs, _, _ := newServer(t, api.Settings{Tokens: []string{"dash-read-token"}})
	jar, _ := cookiejar.New(nil)
	noFollow := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	browse := func(method, path string, form url.Values) *http.Response {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequest(method, hs.URL+path, body)
		req.Header.Set("Accept", "text/html,application/xhtml+xml")
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		res, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	res := browse("GET", "/customers/"+url.PathEscape(c1), nil)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/login?next="+url.QueryEscape("/customers/"+url.PathEscape(c1)) {
		t.Fatalf("page without a session: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	if res := browse("GET", "/login", nil); res.StatusCode != 200 {
		t.Fatalf("login form: %d", res.StatusCode)
	}
	if res := browse("POST", "/login", url.Values{"token": {"wrong"}, "next": {"/"}}); res.StatusCode != 401 || len(res.Cookies()) != 0 {
		t.Fatalf("wrong token: %d, cookies %v", res.StatusCode, res.Cookies())
	}
	res = browse("POST", "/login", url.Values{"token": {"dash-read-token"}, "next": {"//evil.example/"}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/" {
		t.Fatalf("login with a foreign next: %d %q (want a redirect to /)", res.StatusCode, res.Header.Get("Location"))
	}
	cs := res.Cookies()
	if len(cs) != 1 || !cs[0].HttpOnly || strings.Contains(cs[0].Value, "dash-read-token") {
		t.Fatalf("session cookie %+v", cs)
	}
	for _, path := range []string{"/", "/customers/" + url.PathEscape(c1), "/v1/customers/" + url.PathEscape(c1)} {
		if res := browse("GET", path, nil); res.StatusCode != 200 {
			t.Fatalf("%s with the session: %d", path, res.StatusCode)
		}
	}
	// An unsafe method does not take the cookie (no cross-site forms).
	if res := browse("POST", "/v1/customers/"+url.PathEscape(c1), nil); res.StatusCode == 200 {
		t.Fatal("a POST was served on the cookie")
	}
	if res := browse("GET", "/logout", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", res.StatusCode)
	}
	if res := browse("GET", "/", nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("after logout: %d", res.StatusCode)
	}
}

// TestRunRefusesNoToken: the api does not start open by accident.
func TestRunRefusesNoToken(t *testing.T) {
	err := api.Run(context.Background(), api.Config{API: api.Settings{Addr: "127.0.0.1:0"}}, slog.New(slog.DiscardHandler))
	if !errors.Is(err, api.ErrConfig) || !strings.Contains(err.Error(), "JOURNEY_API_TOKENS") {
		t.Fatalf("no token: %v", err)
	}
}

// TestAPIOverTLS: with JOURNEY_API_TLS_* the API serves HTTPS with the
// test's certificate; a client trusting another authority, or speaking
// plain HTTP, gets nothing.
func TestAPIOverTLS(t *testing.T) {
	certs := tlstest.New(t)
	cfg := api.Config{ClickHouse: warehousetest.Config(t), API: api.Settings{Addr: "127.0.0.1:0", Tokens: []string{"tls-token"},
		TLS: tlsconfig.Server{CertFile: certs.ServerCert, KeyFile: certs.ServerKey}}}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- api.RunNotify(ctx, cfg, slog.New(slog.DiscardHandler), ready) }()
	t.Cleanup(func() { cancel(); <-done })
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("api not listening")
	}
	client := func(caFile string) *http.Client {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
	base := "https://" + addr.String()
	req, _ := http.NewRequest("GET", base+"/openapi.yaml", nil)
	res, err := client(certs.CA).Do(req)
	if err != nil {
		t.Fatalf("HTTPS round trip: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), "openapi:") || res.TLS == nil {
		t.Fatalf("HTTPS: %d, TLS %v", res.StatusCode, res.TLS != nil)
	}
	if res, err := client(certs.CA).Get(base + "/v1/metrics/nps"); err != nil || res.StatusCode != 401 {
		t.Fatalf("HTTPS without a token: %v %v", res, err)
	}
	if _, err := client(certs.OtherCA).Get(base + "/openapi.yaml"); err == nil {
		t.Fatal("a client trusting another authority accepted the server")
	}
	if res, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr.String() + "/openapi.yaml"); err == nil && res.StatusCode == 200 {
		t.Fatal("plain HTTP was served on the TLS port")
	}
}
