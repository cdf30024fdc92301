package collector

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/klantreis/journey/pkg/minimise"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/tlsconfig"
)

// Config is everything the collector reads from the environment.
type Config struct {
	NATS      stream.Conn     `envconfig:"NATS"`
	Stream    stream.Topology `envconfig:"STREAM"`
	Collector Settings        `envconfig:"COLLECTOR"`

	// Ready, if set, receives the listener's address once it listens (a
	// caller that binds :0 needs the port). Not from the environment.
	Ready chan<- net.Addr `ignored:"true"`
}

// Settings are the collector's own settings (JOURNEY_COLLECTOR_*). The
// defaults are safe for a public endpoint except that no token exists until
// one is configured: without Tokens or TokensFile, Run refuses to start.
type Settings struct {
	// Addr to listen on (default 127.0.0.1:8088).
	Addr string `envconfig:"ADDR" default:"127.0.0.1:8088"`
	// Minimise masks or drops free-text fields of accepted events before
	// they are published (JOURNEY_COLLECTOR_MINIMISE_COMPLAINT_TEXT,
	// _SURVEY_COMMENT: keep, mask or drop; default keep), so the text
	// reaches no store at all. See docs/privacy.md.
	Minimise minimise.Config `envconfig:"MINIMISE"`
	// TLS serves the listener over HTTPS (JOURNEY_COLLECTOR_TLS_*: CERT_FILE, KEY_FILE,
	// CLIENT_CA_FILE for mutual TLS); off by default.
	TLS tlsconfig.Server `envconfig:"TLS"`
	// Tokens in plain text: "token=prefix1|prefix2;token2=prefix3". A token
	// may send events whose source starts with one of its prefixes ("*" is
	// every source). Tokens are hashed at load and never logged.
	Tokens string `envconfig:"TOKENS"`
	// TokensFile holds one "sha256:<hex>=prefix1|prefix2" line per token
	// (# comments allowed): only hashes, so the file reveals no token.
	// `journey-collector hash-token` prints a token's hash.
	TokensFile string `envconfig:"TOKENS_FILE"`

	// MaxRequestBytes bounds a request body (default 1 MiB); more is 413.
	MaxRequestBytes int64 `envconfig:"MAX_REQUEST_BYTES" default:"1048576"`
	// MaxEventBytes bounds one event (default 64 KiB, the size the
	// CloudEvents spec requires intermediaries to forward); more is 413.
	MaxEventBytes int `envconfig:"MAX_EVENT_BYTES" default:"65536"`
	// MaxBatchEvents bounds the events in one batch (default 1000); more is 413.
	MaxBatchEvents int `envconfig:"MAX_BATCH_EVENTS" default:"1000"`
	// MaxHeaders bounds the number of header values of a request (default
	// 100) and MaxHeaderBytes their total size (default 16 KiB); more is 431.
	MaxHeaders     int `envconfig:"MAX_HEADERS" default:"100"`
	MaxHeaderBytes int `envconfig:"MAX_HEADER_BYTES" default:"16384"`
	// MaxConcurrent bounds requests being handled at once (default 512);
	// beyond it the collector answers 503 with Retry-After at once rather
	// than queueing without bound.
	MaxConcurrent int `envconfig:"MAX_CONCURRENT" default:"512"`

	// Rate is the events per second each token may send (default 1000; 0
	// disables the limit) and Burst how many it may send at once (default
	// 2000; at least MaxBatchEvents, so a full batch can pass). Over it: 429.
	Rate  float64 `envconfig:"RATE" default:"1000"`
	Burst int     `envconfig:"BURST" default:"2000"`

	// AckTimeout bounds the wait for JetStream's acks (default 5s); without
	// an ack in time the answer is 503 and the client retries with the same
	// ids, which the stream deduplicates.
	AckTimeout time.Duration `envconfig:"ACK_TIMEOUT" default:"5s"`
	// MaxPendingAcks bounds the publishes awaiting an ack across all
	// requests (default 16384); a publish that would exceed it waits up to
	// 200ms, then the request gets 503.
	MaxPendingAcks int `envconfig:"MAX_PENDING_ACKS" default:"16384"`
	// RetryAfter is the Retry-After of a 503 (default 2s).
	RetryAfter time.Duration `envconfig:"RETRY_AFTER" default:"2s"`
	// Drain is how long in-flight requests may take to finish at shutdown
	// (default 10s).
	Drain time.Duration `envconfig:"DRAIN" default:"10s"`

	// WebhookOrigins may pass the webhook abuse-protection handshake
	// (OPTIONS): comma-separated origins, "*" for any (default "*": tokens
	// protect the endpoint, the handshake only records consent).
	WebhookOrigins []string `envconfig:"WEBHOOK_ORIGINS" default:"*"`

	// BrowserSource enables POST /v1/visits for web pages: the source of the
	// visit touchpoints it emits (default empty: the endpoint answers 404).
	BrowserSource string `envconfig:"BROWSER_SOURCE"`
	// BrowserOrigins are the CORS origins allowed to post visits
	// (comma-separated, exact match such as https://www.example.com; "*" any).
	BrowserOrigins []string `envconfig:"BROWSER_ORIGINS"`
	// BrowserMaxBytes bounds a visit body (default 2048).
	BrowserMaxBytes int64 `envconfig:"BROWSER_MAX_BYTES" default:"2048"`
	// BrowserRate is the visits per second the browser endpoint accepts in
	// total (default 100, burst 2x); over it: 429.
	BrowserRate float64 `envconfig:"BROWSER_RATE" default:"100"`
}

// ErrConfig marks a bad setting; the message names the variable.
var ErrConfig = errors.New("collector: bad config")

// DefaultSettings are the envconfig defaults, for tests and embedding.
func DefaultSettings() Settings {
	return Settings{
		Addr:            "127.0.0.1:8088",
		MaxRequestBytes: 1 << 20,
		MaxEventBytes:   64 << 10,
		MaxBatchEvents:  1000,
		MaxHeaders:      100,
		MaxHeaderBytes:  16 << 10,
		MaxConcurrent:   512,
		Rate:            1000,
		Burst:           2000,
		AckTimeout:      5 * time.Second,
		MaxPendingAcks:  16384,
		RetryAfter:      2 * time.Second,
		Drain:           10 * time.Second,
		WebhookOrigins:  []string{"*"},
		BrowserMaxBytes: 2048,
		BrowserRate:     100,
	}
}

// Validate reports the first bad setting by its variable name.
func (s Settings) Validate() error {
	const p = "JOURNEY_COLLECTOR_"
	if err := s.Minimise.Validate(p + "MINIMISE_"); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	switch {
	case s.MaxRequestBytes < 1024:
		return fmt.Errorf("%w: %sMAX_REQUEST_BYTES must be at least 1024, got %d", ErrConfig, p, s.MaxRequestBytes)
	case s.MaxEventBytes < 1024 || int64(s.MaxEventBytes) > s.MaxRequestBytes:
		return fmt.Errorf("%w: %sMAX_EVENT_BYTES must be 1024..MAX_REQUEST_BYTES, got %d", ErrConfig, p, s.MaxEventBytes)
	case s.MaxBatchEvents < 1:
		return fmt.Errorf("%w: %sMAX_BATCH_EVENTS must be at least 1, got %d", ErrConfig, p, s.MaxBatchEvents)
	case s.MaxHeaders < 8 || s.MaxHeaderBytes < 1024:
		return fmt.Errorf("%w: %sMAX_HEADERS must be at least 8 and MAX_HEADER_BYTES at least 1024", ErrConfig, p)
	case s.MaxConcurrent < 1:
		return fmt.Errorf("%w: %sMAX_CONCURRENT must be at least 1, got %d", ErrConfig, p, s.MaxConcurrent)
	case s.Rate < 0:
		return fmt.Errorf("%w: %sRATE must be >= 0, got %g", ErrConfig, p, s.Rate)
	case s.Rate > 0 && s.Burst < s.MaxBatchEvents:
		return fmt.Errorf("%w: %sBURST (%d) must be at least MAX_BATCH_EVENTS (%d) or no full batch could ever pass", ErrConfig, p, s.Burst, s.MaxBatchEvents)
	case s.AckTimeout <= 0:
		return fmt.Errorf("%w: %sACK_TIMEOUT must be positive", ErrConfig, p)
	case s.MaxPendingAcks < s.MaxBatchEvents:
		return fmt.Errorf("%w: %sMAX_PENDING_ACKS must be at least MAX_BATCH_EVENTS", ErrConfig, p)
	case s.RetryAfter < time.Second:
		return fmt.Errorf("%w: %sRETRY_AFTER must be at least 1s", ErrConfig, p)
	case s.BrowserSource != "" && (s.BrowserMaxBytes < 128 || s.BrowserRate <= 0):
		return fmt.Errorf("%w: %sBROWSER_MAX_BYTES must be at least 128 and BROWSER_RATE positive", ErrConfig, p)
	}
	return nil
}
