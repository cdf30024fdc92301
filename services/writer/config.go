package writer

import (
	"errors"
	"fmt"
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
}

// Settings are the writer's own knobs (JOURNEY_WRITER_*). The batch
// defaults come from docs/perf-writer.md: on a 2-core machine draining
// improves up to 20000-row batches (fewer inserts, parts and pull
// requests), while the 200 ms age keeps latency bounded at low rates.
type Settings struct {
	// Addr is the ops listener: /healthz, /readyz, /metrics (default 127.0.0.1:8090).
	Addr string `envconfig:"ADDR" default:"127.0.0.1:8090"`
	// TLS serves the listener over HTTPS (JOURNEY_WRITER_TLS_*: CERT_FILE, KEY_FILE,
	// CLIENT_CA_FILE for mutual TLS); off by default.
	TLS tlsconfig.Server `envconfig:"TLS"`
	// Consumer is the durable consumer name that all writer processes
	// share; each message goes to one of them (default writer).
	Consumer string `envconfig:"CONSUMER" default:"writer"`
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

	// CrashAt is a TEST HOOK: before_insert, mid_insert (after the first
	// half of the batch is stored) or after_insert (before the acks) makes
	// the process SIGKILL itself at that point of batch number CrashBatch.
	// The crash tests use it to prove exactly-once; never set it in production.
	CrashAt string `envconfig:"CRASH_AT"`
	// CrashBatch is the 1-based batch at which CrashAt fires (default 1).
	CrashBatch int `envconfig:"CRASH_BATCH" default:"1"`
}

// ErrConfig marks an unusable setting.
var ErrConfig = errors.New("writer: bad config")

// Crash hook points.
const (
	CrashBeforeInsert = "before_insert"
	CrashMidInsert    = "mid_insert"
	CrashAfterInsert  = "after_insert"
)

func (s Settings) validate() error {
	switch {
	case s.Consumer == "":
		return fmt.Errorf("%w: JOURNEY_WRITER_CONSUMER is empty", ErrConfig)
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
	case s.CrashAt != "" && s.CrashAt != CrashBeforeInsert && s.CrashAt != CrashMidInsert && s.CrashAt != CrashAfterInsert:
		return fmt.Errorf("%w: JOURNEY_WRITER_CRASH_AT must be before_insert, mid_insert or after_insert, got %q", ErrConfig, s.CrashAt)
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
