package stream_test

import (
	"context"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/natsserver"
	"github.com/klantreis/journey/internal/tlstest"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/tlsconfig"
)

// TestNATSOverTLS: an embedded server that requires TLS, with the users of
// deploy/nats; a service connects with JOURNEY_NATS_TLS_CA_FILE and its
// user and publishes a touchpoint that the stream acknowledges. A client
// that trusts another authority, or none, does not get in.
func TestNATSOverTLS(t *testing.T) {
	f := tlstest.New(t)
	tc, err := tlsconfig.Server{CertFile: f.ServerCert, KeyFile: f.ServerKey}.Config()
	if err != nil {
		t.Fatal(err)
	}
	perms, err := stream.DefaultAccessNames().Permissions()
	if err != nil {
		t.Fatal(err)
	}
	pw := map[string]string{stream.PasswordVar(stream.UserAdmin): "admin-pw", stream.PasswordVar(stream.UserCollector): "collector-pw"}
	for _, u := range stream.Users() {
		if _, ok := pw[stream.PasswordVar(u)]; !ok {
			pw[stream.PasswordVar(u)] = "unused-" + u
		}
	}
	srv, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir(), TLS: tc, Auth: stream.AuthConfig(perms), Passwords: pw})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	conn := func(user, password, ca string) stream.Conn {
		return stream.Conn{URL: srv.ClientURL(), User: user, Password: password, ReconnectWait: 100 * time.Millisecond,
			RequestTimeout: 5 * time.Second, TLS: tlsconfig.Client{CAFile: ca}}
	}
	ctx := context.Background()
	nc, js, err := stream.Connect(conn(stream.UserAdmin, "admin-pw", f.CA), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := stream.DefaultTopology().Ensure(ctx, js); err != nil {
		t.Fatalf("admin over TLS: %v", err)
	}
	if st, err := nc.TLSConnectionState(); err != nil || !st.HandshakeComplete {
		t.Fatal("the connection is not TLS")
	}
	cnc, cjs, err := stream.Connect(conn(stream.UserCollector, "collector-pw", f.CA), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cnc.Close()
	ack := publish(t, cjs, visit(t, "shop", "tls-1", "c-1"))
	if ack.Stream != stream.TouchpointStream || ack.Sequence != 1 {
		t.Fatalf("ack over TLS: %+v", ack)
	}

	// Another authority: the handshake fails, so the connection never
	// comes up (it keeps retrying, as a service would).
	bad, _, err := stream.Connect(conn(stream.UserCollector, "collector-pw", f.OtherCA), nil)
	if err == nil {
		defer bad.Close()
		if err := bad.FlushTimeout(2 * time.Second); err == nil {
			t.Fatal("a client trusting another authority connected")
		}
	}
	// No TLS at all: refused.
	plain, _, err := stream.Connect(stream.Conn{URL: srv.ClientURL(), User: stream.UserCollector, Password: "collector-pw", ReconnectWait: 100 * time.Millisecond}, nil)
	if err == nil {
		defer plain.Close()
		if err := plain.FlushTimeout(2 * time.Second); err == nil {
			t.Fatal("a plain client connected to the TLS server")
		}
	}
}
