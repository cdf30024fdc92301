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
	"testing"

	"github.com/klantreis/journey/internal/natsserver"
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
