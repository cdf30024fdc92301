package stream

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/tlsconfig"
)

// Conn configures the connection to NATS (JOURNEY_NATS_*).
type Conn struct {
	// URL of the NATS server(s), comma-separated.
	URL string `envconfig:"URL" default:"nats://127.0.0.1:4222"`
	// Name the connection shows in server monitoring.
	Name string `envconfig:"NAME"`
	// Token or credentials file, if the server requires them.
	Token     string `envconfig:"TOKEN"`
	CredsFile string `envconfig:"CREDS_FILE"`
	// User and Password (or PasswordFile, whose first line is the
	// password) authenticate as one of the users of deploy/nats (see
	// [AccessNames.Permissions]).
	User         string `envconfig:"USER"`
	Password     string `envconfig:"PASSWORD"`
	PasswordFile string `envconfig:"PASSWORD_FILE"`
	// InboxPrefix is the prefix of reply subjects; default _INBOX.<user>
	// when a user is set (the subjects its permissions allow), else _INBOX.
	InboxPrefix string `envconfig:"INBOX_PREFIX"`
	// TLS to the server (JOURNEY_NATS_TLS_*); off by default, on when a CA
	// or client certificate is given. A tls:// URL needs it.
	TLS tlsconfig.Client `envconfig:"TLS"`
	// ReconnectWait between reconnect attempts; attempts never stop, so a
	// service outlives any broker restart.
	ReconnectWait time.Duration `envconfig:"RECONNECT_WAIT" default:"500ms"`
	// RequestTimeout bounds JetStream API calls and acks (default 5s).
	RequestTimeout time.Duration `envconfig:"REQUEST_TIMEOUT" default:"5s"`
}

// ErrConn marks unusable connection settings.
var ErrConn = errors.New("stream: bad NATS connection settings")

// authOptions are the credential, inbox and TLS options of c.
func (c Conn) authOptions() ([]nats.Option, error) {
	var opts []nats.Option
	if c.Token != "" {
		opts = append(opts, nats.Token(c.Token))
	}
	if c.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	password := c.Password
	if c.PasswordFile != "" {
		if password != "" {
			return nil, fmt.Errorf("%w: set JOURNEY_NATS_PASSWORD or JOURNEY_NATS_PASSWORD_FILE, not both", ErrConn)
		}
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("%w: JOURNEY_NATS_PASSWORD_FILE: %w", ErrConn, err)
		}
		password, _, _ = strings.Cut(string(b), "\n")
		password = strings.TrimRight(password, "\r")
	}
	switch {
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, password))
	case password != "":
		return nil, fmt.Errorf("%w: a NATS password needs JOURNEY_NATS_USER", ErrConn)
	}
	prefix := c.InboxPrefix
	if prefix == "" && c.User != "" {
		prefix = InboxPrefix(c.User)
	}
	if prefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(prefix))
	}
	tc, err := c.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("%w: JOURNEY_NATS_TLS_*: %w", ErrConn, err)
	}
	if tc != nil {
		opts = append(opts, nats.Secure(tc))
	}
	return opts, nil
}

// Connect opens a connection that reconnects forever and buffers up to
// 8 MiB of publishes while reconnecting, and a JetStream context on it.
func Connect(c Conn, log *slog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	if log == nil {
		log = slog.Default()
	}
	opts := []nats.Option{
		nats.Name(c.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(c.ReconnectWait),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectBufSize(8 << 20),
		nats.Timeout(5 * time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			// err is nil when the connection was closed on purpose (the
			// handler also runs then, after Close returned): not news.
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Warn("nats async error", "subject", subj, "err", err)
		}),
	}
	auth, err := c.authOptions()
	if err != nil {
		return nil, nil, err
	}
	opts = append(opts, auth...)
	nc, err := nats.Connect(c.URL, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("stream: connect %s: %w", c.URL, err)
	}
	timeout := c.RequestTimeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(timeout))
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("stream: jetstream: %w", err)
	}
	return nc, js, nil
}
