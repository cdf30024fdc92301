// Package natstest gives each test its own embedded NATS server.
//
// Tests used to share one server per package and delete their streams at
// cleanup. nats-server 2.15.2 deletes a file-storage stream's directory in
// the background and ignores the errors of that removal, so a test that
// creates a stream of the same name right after can fail with "error
// creating store for stream" or, worse, be given the deleted stream's
// messages. A server with its own directory per test has nothing to race
// with; it starts in a few milliseconds.
package natstest

import (
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/natsserver"
	"github.com/klantreis/journey/pkg/stream"
)

// Start starts a server with JetStream in a fresh temporary directory and
// shuts it down when the test ends. It fails the test if the server does
// not start.
func Start(t testing.TB) *natsserver.Server {
	t.Helper()
	srv, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// URL starts a server as [Start] does and returns its client URL.
func URL(t testing.TB) string {
	t.Helper()
	return Start(t).ClientURL()
}

// Secure is a server that enforces journey's users and permissions.
type Secure struct {
	*natsserver.Server
	// Passwords by user (stream.UserWriter, ...).
	Passwords map[string]string
}

// Conn is the connection settings of one user.
func (s Secure) Conn(user string) stream.Conn {
	return stream.Conn{URL: s.ClientURL(), User: user, Password: s.Passwords[user],
		ReconnectWait: 100 * time.Millisecond, RequestTimeout: 5 * time.Second}
}

// StartSecure starts a server as [Start] does, with the users and
// permissions of deploy/nats for the given names (stream.DefaultAccessNames
// for the services' defaults) and a fresh password per user. Anonymous
// clients are refused.
func StartSecure(t testing.TB, names stream.AccessNames) Secure {
	t.Helper()
	perms, err := names.Permissions()
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	pw := map[string]string{}
	vars := map[string]string{}
	for _, u := range stream.Users() {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		pw[u] = hex.EncodeToString(b)
		vars[stream.PasswordVar(u)] = pw[u]
	}
	srv, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir(), Auth: stream.AuthConfig(perms), Passwords: vars})
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	return Secure{Server: srv, Passwords: pw}
}
