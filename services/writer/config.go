package writer

import (
	"errors"
	"fmt"
	"github.com/klantreis/journey/pkg/minimise"
	"net"
	"time"

	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/tlsconfig"
	"github.com/klantreis/journey/pkg/warehouse"
)

// Config is the writer's whole configuration (JOURNEY_*).
type Config struct {
	NATS       stream.Conn      `envconfig:"NATS"`
	Stream     stream.Topology  `envconfig:"STREAM"`
	ClickHouse warehouse.Config `envconfig:"CLICKHOUSE"`
	Writer     Settings         `envconfig:"WRITER"`

	// OpsReady, if set, receives the ops server's address once it listens
	// (tests bind :0 and need the port). Not from the environment.
	OpsReady chan<- net.Addr `ignored:"true"`

	// crash is the crash-injection test hook; only the package's tests can
	// set it (export_test.go), so a production writer cannot be made to
	// kill itself by its environment.
	crash crashHook
}

// crashHook makes the process SIGKILL itself at point (one of the Crash*
// constants) of batch number batch (1-based): the crash tests use it to
// prove exactly-once. The zero value never fires.
type crashHook struct {
	point string
	batch int
}

// newCrashHook checks a hook's point and batch.
func newCrashHook(point string, batch int) (crashHook, error) {
	switch {
	case point != CrashBeforeInsert && point != CrashMidInsert && point != CrashAfterInsert:
		return crashHook{}, fmt.Errorf("%w: crash point must be before_insert, mid_insert or after_insert, got %q", ErrConfig, point)
	case batch < 1:
		return crashHook{}, fmt.Errorf("%w: crash batch must be 1 or more, got %d", ErrConfig, batch)
	}
	return crashHook{point: point, batch: batch}, nil
}

// Settings are the writer's own knobs (JOURNEY_WRITER_*). The batch
// defaults come from docs/perf-writer.md: on a 2-core machine draining
// improves up to 20000-row batches (fewer inserts, parts and pull
// requests), while the 200 ms age keeps latency bounded at low rates.
type Settings struct {
	// Addr is the ops listener: /healthz, /readyz, /metrics (default 127.0.0.1:8090).
	Addr string `envconfig:"ADDR" default:"127.0.0.1:8090"`
	// Minimise masks or drops free-text fields before they are stored
	// (JOURNEY_WRITER_MINIMISE_COMPLAINT_TEXT, _SURVEY_COMMENT: keep, mask
	// or drop; default keep), for events that did not come through a
	// collector doing the same (pkg/publish). See docs/privacy.md.
	Minimise minimise.Config `envconfig:"MINIMISE"`
	// TLS serves the listener over HTTPS (JOURNEY_WRITER_TLS_*: CERT_FILE, KEY_FILE,
	// CLIENT_CA_FILE for mutual TLS); off by default.
	TLS tlsconfig.Server `envconfig:"TLS"`
	// Consumer is the durable consumer name that all writer processes
	// share; each message goes to one of them (default writer).
	Consumer string `envconfig:"CONSUMER" default:"writer"`
	// Input is what this writer consumes: "touchpoints" (the TOUCHPOINTS
	// stream, default) or "replay": the copies `journeyctl replay --to
	// warehouse` puts on the REPLAY stream (replay.warehouse.>), through the
	// durable "<Consumer>-replay". Run one writer with each; the identity
	// check and the fence make a copy of a stored event add no row.
	Input string `envconfig:"INPUT" default:"touchpoints"`
	// BatchSize flushes a batch at this many messages (default 20000).
	BatchSize int `envconfig:"BATCH_SIZE" default:"20000"`
	// BatchBytes flushes a batch at this many bytes, payload plus an
	// estimate of the headers (default 16 MiB).
	BatchBytes int `envconfig:"BATCH_BYTES" default:"16777216"`
	// BatchAge flushes a non-empty batch this long after its first
	// message arrived, if the insert pipeline is free (default 200ms).
	BatchAge time.Duration `envconfig:"BATCH_AGE" default:"200ms"`
	// AckWait is the consumer's redelivery timeout. The writer extends it
	// with in-progress acks while it holds messages, so it only fires when
	// a writer died or lost NATS; it bounds how long the messages a killed
	// writer held wait for another (default 15s). It is also the fence's
	// expiry (see Fence).
	AckWait time.Duration `envconfig:"ACK_WAIT" default:"15s"`
	// MaxAckPending bounds unacknowledged messages across all writers
	// (default 100000; each writer holds at most 2 batches).
	MaxAckPending int `envconfig:"MAX_ACK_PENDING" default:"100000"`
	// InsertTimeout bounds one INSERT attempt; it must be under 2/3 of
	// AckWait so that a lease checked before the insert outlives it (default 9s).
	InsertTimeout time.Duration `envconfig:"INSERT_TIMEOUT" default:"9s"`
	// Fence makes the writers of one table take turns for the identity
	// check and the insert after it (a key in the JOURNEY_WRITER_FENCE KV
	// bucket), so that two writers holding copies of one event at once,
	// such as a live writer and a replay, cannot both store it (default
	// true). A writer that dies holding it delays the others by at most
	// AckWait. Off, two writers can double an event in that window.
	Fence bool `envconfig:"FENCE" default:"true"`
	// MaxBackoff caps the wait between retries of a transient failure
	// (default 5s).
	MaxBackoff time.Duration `envconfig:"MAX_BACKOFF" default:"5s"`
	// Drain bounds the graceful shutdown: the last batches' inserts and
	// acks (default 30s). What is not acked by then is redelivered.
	Drain time.Duration `envconfig:"DRAIN" default:"30s"`
	// LagInterval is how often consumer lag is read for /metrics (default 5s).
	LagInterval time.Duration `envconfig:"LAG_INTERVAL" default:"5s"`
}

// ErrConfig marks an unusable setting.
var ErrConfig = errors.New("writer: bad config")

// Inputs of a writer (Settings.Input).
const (
	InputTouchpoints = "touchpoints"
	InputReplay      = "replay"
)

// Crash hook points.
const (
	CrashBeforeInsert = "before_insert"
	CrashMidInsert    = "mid_insert"
	CrashAfterInsert  = "after_insert"
)

func (s Settings) validate() error {
	if err := s.Minimise.Validate("JOURNEY_WRITER_MINIMISE_"); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	switch {
	case s.Consumer == "":
		return fmt.Errorf("%w: JOURNEY_WRITER_CONSUMER is empty", ErrConfig)
	case s.Input != "" && s.Input != InputTouchpoints && s.Input != InputReplay: // "" (a config built in code) is touchpoints
		return fmt.Errorf("%w: JOURNEY_WRITER_INPUT must be touchpoints or replay, got %q", ErrConfig, s.Input)
	case s.BatchSize < 1 || s.BatchSize > 1_000_000:
		return fmt.Errorf("%w: JOURNEY_WRITER_BATCH_SIZE must be 1..1000000, got %d", ErrConfig, s.BatchSize)
	case s.BatchBytes < 1024:
		return fmt.Errorf("%w: JOURNEY_WRITER_BATCH_BYTES must be at least 1024, got %d", ErrConfig, s.BatchBytes)
	case s.BatchAge < time.Millisecond:
		return fmt.Errorf("%w: JOURNEY_WRITER_BATCH_AGE must be at least 1ms, got %s", ErrConfig, s.BatchAge)
	case s.AckWait < 3*time.Second:
		return fmt.Errorf("%w: JOURNEY_WRITER_ACK_WAIT must be at least 3s, got %s", ErrConfig, s.AckWait)
	case s.InsertTimeout <= 0 || 3*s.InsertTimeout > 2*s.AckWait:
		return fmt.Errorf("%w: JOURNEY_WRITER_INSERT_TIMEOUT must be positive and under 2/3 of JOURNEY_WRITER_ACK_WAIT (%s), got %s", ErrConfig, s.AckWait, s.InsertTimeout)
	case s.MaxAckPending < 2*s.BatchSize:
		return fmt.Errorf("%w: JOURNEY_WRITER_MAX_ACK_PENDING must be at least 2 x JOURNEY_WRITER_BATCH_SIZE, got %d", ErrConfig, s.MaxAckPending)
	case s.MaxBackoff < 10*time.Millisecond:
		return fmt.Errorf("%w: JOURNEY_WRITER_MAX_BACKOFF must be at least 10ms, got %s", ErrConfig, s.MaxBackoff)
	}
	return nil
}

// heartbeat is how often held messages get an in-progress ack.
func (s Settings) heartbeat() time.Duration { return s.AckWait / 6 }

// leaseLimit is the oldest a confirmed lease may be when an insert attempt
// starts: the attempt (at most InsertTimeout) must end before the server
// could redeliver the message to another writer.
func (s Settings) leaseLimit() time.Duration {
	return s.AckWait - s.InsertTimeout - s.heartbeat()
}
