package stream

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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
	// ReconnectWait between reconnect attempts; attempts never stop, so a
	// service outlives any broker restart.
	ReconnectWait time.Duration `envconfig:"RECONNECT_WAIT" default:"500ms"`
	// RequestTimeout bounds JetStream API calls and acks (default 5s).
	RequestTimeout time.Duration `envconfig:"REQUEST_TIMEOUT" default:"5s"`
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
			log.Warn("nats disconnected", "err", err)
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
	if c.Token != "" {
		opts = append(opts, nats.Token(c.Token))
	}
	if c.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
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
