// Package projector runs the projector service: it consumes the touchpoint
// stream per customer partition, applies the lifecycle and satisfaction
// rules (pkg/journey, through pkg/projection), keeps each customer's state
// in a JetStream key-value bucket, writes customer_state, stage_transitions
// and satisfaction_responses to ClickHouse, publishes derived events on the
// DERIVED stream and sweeps customers whose inactivity window expired.
package projector

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/tlsconfig"
	"github.com/klantreis/journey/pkg/warehouse"
)

// Config is the projector's configuration (JOURNEY_*).
type Config struct {
	NATS       stream.Conn      `envconfig:"NATS"`
	Stream     stream.Topology  `envconfig:"STREAM"`
	ClickHouse warehouse.Config `envconfig:"CLICKHOUSE"`
	Projector  Settings         `envconfig:"PROJECTOR"`
}

// Settings are the projector's own settings (JOURNEY_PROJECTOR_*).
type Settings struct {
	// Addr serves /healthz, /readyz and /metrics (default 127.0.0.1:8091).
	Addr string `envconfig:"ADDR" default:"127.0.0.1:8091"`
	// TLS serves the listener over HTTPS (JOURNEY_PROJECTOR_TLS_*: CERT_FILE, KEY_FILE,
	// CLIENT_CA_FILE for mutual TLS); off by default.
	TLS tlsconfig.Server `envconfig:"TLS"`
	// Partitions this instance owns: "all", or a list such as "0-3" or
	// "0,2,4-5". N instances split the stream's partitions by giving each a
	// disjoint set; every partition must be owned by exactly one instance.
	Partitions string `envconfig:"PARTITIONS" default:"all"`
	// Durable is the prefix of the consumers' durable names; partition k
	// uses "<Durable>-p<k>" (default journey-projector).
	Durable string `envconfig:"DURABLE" default:"journey-projector"`
	// Bucket is the key-value bucket of customer states (key = customer key).
	Bucket string `envconfig:"BUCKET" default:"journey_customers"`
	// IndexBucket holds each customer's inactivity expiry, keyed
	// "p<partition>.<customer key>", to rebuild the sweep schedule at start.
	IndexBucket string `envconfig:"INDEX_BUCKET" default:"journey_expiry"`
	// OutboxStream is the JetStream work queue that carries warehouse rows
	// from the partitions to the ClickHouse loader (default
	// PROJECTOR_OUTBOX).
	OutboxStream string `envconfig:"OUTBOX_STREAM" default:"PROJECTOR_OUTBOX"`
	// WarehouseBatch bounds the customer rows of one ClickHouse insert
	// (default 20000); WarehouseWait is how long the loader gathers rows
	// before it inserts (default 1s): each insert makes parts that
	// ClickHouse merges, so rarer, larger inserts cost it less CPU (a
	// drain measured 5 CPU-s of ClickHouse at 100ms, 1–2 at 1s), and no
	// goal asks these rows to be fresher than a second.
	WarehouseBatch int           `envconfig:"WAREHOUSE_BATCH" default:"20000"`
	WarehouseWait  time.Duration `envconfig:"WAREHOUSE_WAIT" default:"1s"`
	// BatchSize bounds the events applied and written together per
	// partition (default 10000). Larger batches coalesce more writes: a
	// customer is written once per batch. A batch is only this large when
	// events are waiting (a backlog); at live rates it holds what arrived
	// within BatchWait. BenchmarkDrain measured 2000 → 10000 as ~11 k →
	// ~20 k events/s; 20000 gained nothing more.
	BatchSize int `envconfig:"BATCH_SIZE" default:"10000"`
	// BatchWait is how long a partition waits for more events before it
	// applies a partial batch (default 2ms): latency vs write coalescing.
	BatchWait time.Duration `envconfig:"BATCH_WAIT" default:"2ms"`
	// AckWait is the consumer's redelivery timeout (default 15s). A batch
	// being applied is held with in-progress acks every AckWait/4, so it
	// only fires for a projector that died or lost NATS: it bounds how long
	// the events a killed projector held wait for its successor.
	AckWait time.Duration `envconfig:"ACK_WAIT" default:"15s"`
	// MaxStateBytes bounds a customer's stored state (default 0: the
	// broker's maximum message size less 4 KiB for the subject and
	// headers). States over 64 KiB are stored compressed (about 4x); a
	// customer whose state would still be larger is rejected: the events
	// that would have grown it go to the dead-letter stream with class
	// "state_too_large", the stored state stays as it was, and the rest of
	// the partition goes on. To take them back, raise the broker's
	// max_payload and this, and replay the partition the dead letters name
	// (docs/configuration.md); republishing them would store them twice.
	MaxStateBytes int `envconfig:"MAX_STATE_BYTES" default:"0"`
	// CacheSize bounds the customer states kept in memory per instance
	// (default 200000); a miss costs a key-value read.
	CacheSize int `envconfig:"CACHE_SIZE" default:"200000"`
	// SweepInterval is how often due customers are moved to ex_customer
	// (default 1m).
	SweepInterval time.Duration `envconfig:"SWEEP_INTERVAL" default:"1m"`
	// LoyalOrders, LoyalWindow and InactiveAfter are the rules' thresholds
	// (defaults 3 orders in 8760h = 365 days; ex after 8760h). Changing one
	// changes the rules version written with every transition.
	LoyalOrders   int           `envconfig:"LOYAL_ORDERS" default:"3"`
	LoyalWindow   time.Duration `envconfig:"LOYAL_WINDOW" default:"8760h"`
	InactiveAfter time.Duration `envconfig:"INACTIVE_AFTER" default:"8760h"`
	// RetryMax caps the backoff between attempts to write a batch while
	// NATS or ClickHouse is unavailable (default 5s). Attempts never stop.
	RetryMax time.Duration `envconfig:"RETRY_MAX" default:"5s"`
	// DrainTimeout bounds the shutdown: finishing the batch in hand and the
	// HTTP server (default 10s).
	DrainTimeout time.Duration `envconfig:"DRAIN_TIMEOUT" default:"10s"`
}

// ErrConfig marks a bad setting.
var ErrConfig = errors.New("projector: bad config")

// Rules returns the rules the settings configure.
func (s Settings) Rules() journey.Rules {
	return journey.Rules{LoyalOrders: s.LoyalOrders, LoyalWindow: s.LoyalWindow, InactiveAfter: s.InactiveAfter}
}

// OwnedPartitions parses Partitions against the stream's partition count.
func (s Settings) OwnedPartitions(total int) ([]int, error) {
	spec := strings.TrimSpace(s.Partitions)
	if spec == "" || spec == "all" {
		out := make([]int, total)
		for i := range out {
			out[i] = i
		}
		return out, nil
	}
	seen := map[int]bool{}
	var out []int
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(lo)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || a < 0 || b < a || b >= total {
			return nil, fmt.Errorf("%w: JOURNEY_PROJECTOR_PARTITIONS: %q is not a partition or range within 0..%d", ErrConfig, part, total-1)
		}
		for p := a; p <= b; p++ {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out, nil
}

func (c *Config) validate() error {
	s := c.Projector
	switch {
	case s.BatchSize < 1 || s.BatchSize > 100000:
		return fmt.Errorf("%w: JOURNEY_PROJECTOR_BATCH_SIZE must be 1..100000, got %d", ErrConfig, s.BatchSize)
	case s.SweepInterval <= 0:
		return fmt.Errorf("%w: JOURNEY_PROJECTOR_SWEEP_INTERVAL must be positive", ErrConfig)
	case s.Bucket == "" || s.IndexBucket == "" || s.Bucket == s.IndexBucket:
		return fmt.Errorf("%w: JOURNEY_PROJECTOR_BUCKET and JOURNEY_PROJECTOR_INDEX_BUCKET must be set and differ", ErrConfig)
	case s.OutboxStream == "" || s.WarehouseBatch < 1:
		return fmt.Errorf("%w: JOURNEY_PROJECTOR_OUTBOX_STREAM must be set and JOURNEY_PROJECTOR_WAREHOUSE_BATCH positive", ErrConfig)
	case s.MaxStateBytes < 0:
		return fmt.Errorf("%w: JOURNEY_PROJECTOR_MAX_STATE_BYTES must be 0 (the broker's limit) or positive, got %d", ErrConfig, s.MaxStateBytes)
	case s.Durable == "":
		return fmt.Errorf("%w: JOURNEY_PROJECTOR_DURABLE is empty", ErrConfig)
	case s.AckWait < time.Second:
		return fmt.Errorf("%w: JOURNEY_PROJECTOR_ACK_WAIT must be at least 1s, got %s", ErrConfig, s.AckWait)
	}
	if err := s.Rules().Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return c.Stream.Validate()
}
