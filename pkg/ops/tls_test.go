package ops_test

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/tlstest"
	"github.com/klantreis/journey/pkg/ops"
	"github.com/klantreis/journey/pkg/tlsconfig"
)

// serve runs ServeTLS with s on a free port and returns its address.
func serve(t *testing.T, s tlsconfig.Server) string {
	t.Helper()
	tc, err := s.Config()
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			http.Error(w, "not TLS", 500)
			return
		}
		io.WriteString(w, "hello over "+tls.VersionName(r.TLS.Version))
	})
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- ops.ServeTLS(ctx, "127.0.0.1:0", mux, time.Second, slog.New(slog.DiscardHandler), ready, tc)
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case a := <-ready:
		return a.String()
	case err := <-done:
		t.Fatal(err)
	}
	return ""
}

func client(t *testing.T, c tlsconfig.Client) *http.Client {
	t.Helper()
	tc, err := c.Config()
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
}

// TestServeTLSRoundTrip: the listener of the collector, the api and the
// ops endpoints serves HTTPS with the certificates the test made; with a
// client CA it also demands a client certificate.
func TestServeTLSRoundTrip(t *testing.T) {
	f := tlstest.New(t)
	addr := serve(t, tlsconfig.Server{CertFile: f.ServerCert, KeyFile: f.ServerKey})
	res, err := client(t, tlsconfig.Client{CAFile: f.CA}).Get("https://" + addr + "/hello")
	if err != nil {
		t.Fatalf("HTTPS round trip: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(body) != "hello over TLS 1.3" {
		t.Fatalf("got %d %q", res.StatusCode, body)
	}
	if _, err := client(t, tlsconfig.Client{CAFile: f.OtherCA}).Get("https://" + addr + "/hello"); err == nil {
		t.Fatal("a client trusting another authority accepted the server")
	}

	mtls := serve(t, tlsconfig.Server{CertFile: f.ServerCert, KeyFile: f.ServerKey, ClientCAFile: f.CA})
	if _, err := client(t, tlsconfig.Client{CAFile: f.CA}).Get("https://" + mtls + "/hello"); err == nil {
		t.Fatal("mutual TLS served a client without a certificate")
	}
	res, err = client(t, tlsconfig.Client{CAFile: f.CA, CertFile: f.ClientCert, KeyFile: f.ClientKey}).Get("https://" + mtls + "/hello")
	if err != nil {
		t.Fatalf("mutual TLS with the client certificate: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("mutual TLS: %d", res.StatusCode)
	}
}
