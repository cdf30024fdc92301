// Package tlsconfig turns file-based TLS settings into a *tls.Config, the
// same way for every connection journey makes or serves: NATS, ClickHouse
// and the HTTP listeners. Certificates are PEM files; they are read once,
// when the config is built.
package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ErrTLS marks unusable TLS settings or files.
var ErrTLS = errors.New("tlsconfig: bad TLS settings")

// Client configures TLS to a server (JOURNEY_<...>_TLS_*). The zero value
// means no TLS. Setting CAFile or CertFile, or Enable, turns TLS on.
type Client struct {
	// Enable turns TLS on with the system's roots when no CAFile is given
	// (default false).
	Enable bool `envconfig:"ENABLE" default:"false"`
	// CAFile holds the PEM certificates that may sign the server's
	// certificate; empty means the system's roots.
	CAFile string `envconfig:"CA_FILE"`
	// CertFile and KeyFile are a client certificate, for servers that
	// verify clients (mutual TLS); both or neither.
	CertFile string `envconfig:"CERT_FILE"`
	KeyFile  string `envconfig:"KEY_FILE"`
	// ServerName overrides the name verified in the server's certificate
	// (default: the host dialled).
	ServerName string `envconfig:"SERVER_NAME"`
}

// On reports whether TLS is configured.
func (c Client) On() bool { return c.Enable || c.CAFile != "" || c.CertFile != "" }

// Config builds the client's *tls.Config: nil when TLS is off. The
// server's certificate is always verified; there is no switch to skip it.
func (c Client) Config() (*tls.Config, error) {
	if !c.On() {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CAFile != "" {
		pool, err := pool(c.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, fmt.Errorf("%w: a client certificate needs both CERT_FILE and KEY_FILE", ErrTLS)
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: client certificate %s: %w", ErrTLS, c.CertFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Server configures TLS on a listener (JOURNEY_<...>_TLS_*). The zero value
// means plain TCP.
type Server struct {
	// CertFile and KeyFile are the server's certificate (chain) and key;
	// both turn TLS on.
	CertFile string `envconfig:"CERT_FILE"`
	KeyFile  string `envconfig:"KEY_FILE"`
	// ClientCAFile, if set, requires clients to present a certificate
	// signed by one of these (mutual TLS).
	ClientCAFile string `envconfig:"CLIENT_CA_FILE"`
}

// On reports whether TLS is configured.
func (s Server) On() bool { return s.CertFile != "" || s.KeyFile != "" }

// Config builds the listener's *tls.Config: nil when TLS is off.
func (s Server) Config() (*tls.Config, error) {
	if !s.On() {
		if s.ClientCAFile != "" {
			return nil, fmt.Errorf("%w: CLIENT_CA_FILE needs CERT_FILE and KEY_FILE", ErrTLS)
		}
		return nil, nil
	}
	if s.CertFile == "" || s.KeyFile == "" {
		return nil, fmt.Errorf("%w: TLS needs both CERT_FILE and KEY_FILE", ErrTLS)
	}
	cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: server certificate %s: %w", ErrTLS, s.CertFile, err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if s.ClientCAFile != "" {
		pool, err := pool(s.ClientCAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

func pool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: CA file: %w", ErrTLS, err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: CA file %s holds no PEM certificate", ErrTLS, file)
	}
	return p, nil
}
