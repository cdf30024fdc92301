// Package natsserver runs the real NATS server (with JetStream) inside the
// process: the local stack's default and every test's broker. It is the same
// server binary that runs in production, not a mock.
package natsserver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options configure an embedded server. The zero value is a loopback server
// on a free port with JetStream in a temporary directory the caller owns.
type Options struct {
	// Host to listen on. Default 127.0.0.1: an embedded server is local.
	Host string
	// Port to listen on; 0 picks a free port. If the port is taken and
	// FallbackToFree is set, a free port is used instead (the caller is told
	// through [Server.ClientURL]).
	Port           int
	FallbackToFree bool
	// StoreDir holds JetStream's files; required, so data survives a restart.
	StoreDir string
	// SyncAlways fsyncs every write before acknowledging it (production
	// setting; see deploy/nats). Off by default for speed in tests.
	//
	// Deleting a file-storage stream and at once creating one of the same
	// name is not safe with or without it: nats-server 2.15.2 moves the old
	// files aside and removes them in the background, ignoring errors, so
	// the new stream may fail to create or be given the old one's
	// messages. Tests take a server of their own instead (package natstest).
	SyncAlways bool
	// MaxPayload in bytes; default 1 MiB.
	MaxPayload int32
	// ReadyTimeout bounds the wait for the server to accept connections.
	// Default 10s.
	ReadyTimeout time.Duration
	// Auth is nats-server configuration text with the users and their
	// permissions (stream.AuthConfig, deploy/nats/permissions.conf); empty
	// accepts anonymous clients. Its password variables are taken from
	// Passwords (variable name to password), so the embedded server
	// enforces the very file a real server is given.
	Auth      string
	Passwords map[string]string
	// TLS, if set, makes clients connect with TLS (tls:// or nats:// URLs
	// both work; plain connections are refused).
	TLS *tls.Config
}

// ErrNotReady is returned when the server did not start listening in time.
var ErrNotReady = errors.New("natsserver: not ready in time")

// Server is a running embedded server.
type Server struct {
	srv  *server.Server
	opts Options
}

// Start starts a server and waits until it accepts connections.
func Start(o Options) (*Server, error) {
	if o.StoreDir == "" {
		return nil, errors.New("natsserver: StoreDir is required")
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 10 * time.Second
	}
	if o.MaxPayload == 0 {
		o.MaxPayload = 1 << 20
	}
	port := o.Port
	if port == 0 {
		port = server.RANDOM_PORT
	} else if o.FallbackToFree && !portFree(o.Host, port) {
		port = server.RANDOM_PORT
	}
	sopts := &server.Options{}
	if o.Auth != "" {
		if err := sopts.ProcessConfigString(authText(o.Auth, o.Passwords)); err != nil {
			return nil, fmt.Errorf("natsserver: auth configuration: %w", err)
		}
	}
	sopts.ServerName = "journey-embedded"
	sopts.Host, sopts.Port = o.Host, port
	sopts.JetStream, sopts.StoreDir = true, o.StoreDir
	sopts.MaxPayload = o.MaxPayload
	sopts.NoSigs, sopts.NoLog = true, true
	if o.TLS != nil {
		sopts.TLSConfig = o.TLS
		sopts.TLS = true
		sopts.TLSTimeout = 5
	}
	if o.SyncAlways {
		sopts.SyncAlways = true
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("natsserver: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(o.ReadyTimeout) {
		srv.Shutdown()
		return nil, fmt.Errorf("%w (port %d)", ErrNotReady, o.Port)
	}
	o.Port = srv.Addr().(*net.TCPAddr).Port
	return &Server{srv: srv, opts: o}, nil
}

// authText prepends the password variables to the configuration text.
// Each is quoted, so any bytes of a generated password are taken as they are.
func authText(auth string, passwords map[string]string) string {
	names := make([]string, 0, len(passwords))
	for n := range passwords {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s: %s\n", n, strconv.Quote(passwords[n]))
	}
	b.WriteString(auth)
	return b.String()
}

// ClientURL is the nats:// URL clients connect to.
func (s *Server) ClientURL() string { return s.srv.ClientURL() }

// Port is the port the server listens on.
func (s *Server) Port() int { return s.opts.Port }

// Shutdown stops the server and waits until it is down. JetStream data
// stays in StoreDir.
func (s *Server) Shutdown() {
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
}

// Restart shuts the server down and starts it again on the same port with
// the same store: what clients see when the broker restarts.
func (s *Server) Restart() (*Server, error) {
	s.Shutdown()
	o := s.opts
	o.FallbackToFree = false
	return Start(o)
}

func portFree(host string, port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
