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
	"net"
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

	// OpsReady, if set, receives the ops server's address once it listens
	// (a caller that binds :0 needs the port). Not from the environment.
	OpsReady chan<- net.Addr `ignored:"true"`
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
	// "group" joins an elastic group instead (group.go): the instances of
	// one Durable share every partition through leases in the key-value
	// bucket "<Durable>-leases", take them over from a dead member and
	// rebalance when one joins or leaves.
	Partitions string `envconfig:"PARTITIONS" default:"all"`
	// LeaseTTL is how long a group member's partition lease lives without
	// renewal (default 10s; "group" only). It bounds how long a dead
	// member's partitions stay unowned; a member that cannot renew for
	// LeaseTTL/2 stops writing them. Renewed every LeaseTTL/6.
	LeaseTTL time.Duration `envconfig:"LEASE_TTL" default:"10s"`
	// Durable is the prefix of the consumers' durable names; partition k
	// uses "<Durable>-p<k>" (default journey-projector).
	Durable string `envconfig:"DURABLE" default:"journey-projector"`
	// Input is what this instance consumes: "touchpoints" (the TOUCHPOINTS
	// stream, default) or "replay": the copies `journeyctl replay --to
	// projector` puts on the REPLAY stream (replay.projector.>). A replay
	// instance runs beside the live one on the same buckets, with its own
	// consumers ("<Durable>-replay-p<k>") and outbox ("<OutboxStream>_REPLAY");
	// the states' compare-and-set and the rules' idempotence per (source, id)
	// make a copy of an event a state already holds a no-op.
	Input string `envconfig:"INPUT" default:"touchpoints"`
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
	// ClickHouse merges, so rarer, larger inserts cost it less CPU
	// (docs/perf-projector.md, "Third round"), and no goal asks these
	// rows to be fresher than a second.
	WarehouseBatch int           `envconfig:"WAREHOUSE_BATCH" default:"20000"`
	WarehouseWait  time.Duration `envconfig:"WAREHOUSE_WAIT" default:"1s"`
	// BatchSize bounds the events applied and written together per
	// partition (default 10000). Larger batches coalesce more writes: a
	// customer is written once per batch. A batch is only this large when
	// events are waiting (a backlog); at live rates it holds what arrived
	// within BatchAge. BenchmarkDrain drains faster with larger batches up
	// to this default and no further (docs/perf-projector.md, "Third round").
	BatchSize int `envconfig:"BATCH_SIZE" default:"10000"`
	// BatchAge is how long a partition waits for more events before it
	// applies a partial batch (default 2ms): latency vs write coalescing.
	BatchAge time.Duration `envconfig:"BATCH_AGE" default:"2ms"`
	// AckWait is the consumer's redelivery timeout (default 15s). A batch
	// being applied is held with in-progress acks every AckWait/4, so it
	// only fires for a projector that died or lost NATS: it bounds how long
	// the events a killed projector held wait for its successor. The outbox
	// loader's consumer uses it too, so a killed projector's warehouse rows
	// come back as soon.
	AckWait time.Duration `envconfig:"ACK_WAIT" default:"15s"`
	// Checkpoint, when positive, turns on checkpoint mode (checkpoint.go):
	// a partition keeps its changed states in memory, writes each changed
	// customer once per Checkpoint (and the expiry index shards it
	// changed), and
	// acknowledges the touchpoints only once that checkpoint is stored.
	// Default 0: every batch writes its states and is acknowledged. It
	// must be at most half of AckWait.
	Checkpoint time.Duration `envconfig:"CHECKPOINT" default:"0s"`
	// CheckpointEvents writes a checkpoint early once this many
	// touchpoints of a partition wait for one (default 50000); the
	// consumer's MaxAckPending is raised to it plus 3*BatchSize.
	CheckpointEvents int `envconfig:"CHECKPOINT_EVENTS" default:"50000"`
	// IndexShards is the number of expiry index shards per partition in
	// checkpoint mode (default 64; pkg/expiryindex): a checkpoint rewrites
	// each shard it changed, one message per shard instead of one per
	// customer. More shards write fewer bytes per checkpoint; a shard
	// larger than the broker's maximum message size writes its changed
	// customers one key each instead (logged), so raise it past ~30 000
	// customers per shard at the default 1 MiB.
	IndexShards int `envconfig:"INDEX_SHARDS" default:"64"`
	// ckptCrash is the crash-injection test hook of checkpoint mode
	// (export_test.go); nil in production.
	ckptCrash *crashAfter
	// MaxStateBytes bounds a customer's stored state (default 0: the
	// broker's maximum message size less 4 KiB for the subject and
	// headers). States over 64 KiB are stored compressed (S2; the ratio is in
	// docs/perf-projector.md, "Figures the code refers to"); a
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
	// MaxBackoff caps the backoff between attempts to write a batch while
	// NATS or ClickHouse is unavailable (default 5s). Attempts never stop.
	MaxBackoff time.Duration `envconfig:"MAX_BACKOFF" default:"5s"`
	// Accounts configure the B2B account projection (JOURNEY_PROJECTOR_ACCOUNTS_*,
	// see AccountSettings); off by default.
	Accounts AccountSettings `envconfig:"ACCOUNTS"`
	// Drain bounds the shutdown: finishing the batch in hand and the
	// HTTP server (default 10s).
	Drain time.Duration `envconfig:"DRAIN" default:"10s"`

	// OldBatchWait, OldRetryMax and OldDrainTimeout read the names
	// BatchAge, MaxBackoff and Drain had until they were matched with the
	// writer's (JOURNEY_PROJECTOR_BATCH_WAIT, _RETRY_MAX, _DRAIN_TIMEOUT).
	// They are read for one release: one that is set is used instead of
	// the new name, and Run logs a deprecation warning. Nil: not set.
	OldBatchWait    *time.Duration `envconfig:"BATCH_WAIT"`
	OldRetryMax     *time.Duration `envconfig:"RETRY_MAX"`
	OldDrainTimeout *time.Duration `envconfig:"DRAIN_TIMEOUT"`
}

// useDeprecated moves the settings given under their old names to the new
// ones and returns a warning for each.
func (s *Settings) useDeprecated() []string {
	var warnings []string
	move := func(old *time.Duration, to *time.Duration, oldName, newName string) {
		if old == nil {
			return
		}
		*to = *old
		warnings = append(warnings, fmt.Sprintf("JOURNEY_PROJECTOR_%s is deprecated and will be removed in the next release: "+
			"set JOURNEY_PROJECTOR_%s instead (using %s)", oldName, newName, *old))
	}
	move(s.OldBatchWait, &s.BatchAge, "BATCH_WAIT", "BATCH_AGE")
	move(s.OldRetryMax, &s.MaxBackoff, "RETRY_MAX", "MAX_BACKOFF")
	move(s.OldDrainTimeout, &s.Drain, "DRAIN_TIMEOUT", "DRAIN")
	return warnings
}

// PartitionsGroup is the Partitions value that joins the elastic group;
// OwnedPartitions then returns every partition (the candidates).
const PartitionsGroup = "group"

// Grouped reports whether the instance joins the elastic group.
func (s Settings) Grouped() bool { return strings.TrimSpace(s.Partitions) == PartitionsGroup }

// Inputs of a projector (Settings.Input).
const (
	InputTouchpoints = "touchpoints"
	InputReplay      = "replay"
)

// ErrConfig marks a bad setting.
var ErrConfig = errors.New("projector: bad config")

// Rules returns the rules the settings configure.
func (s Settings) Rules() journey.Rules {
	return journey.Rules{LoyalOrders: s.LoyalOrders, LoyalWindow: s.LoyalWindow, InactiveAfter: s.InactiveAfter}
}

// OwnedPartitions parses Partitions against the stream's partition count.
func (s Settings) OwnedPartitions(total int) ([]int, error) {
	spec := strings.TrimSpace(s.Partitions)
	if spec == "" || spec == "all" || spec == PartitionsGroup {
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
	case s.Input != "" && s.Input != InputTouchpoints && s.Input != InputReplay: // "" (a config built in code) is touchpoints
		return fmt.Errorf("%w: JOURNEY_PROJECTOR_INPUT must be touchpoints or replay, got %q", ErrConfig, s.Input)
	case s.Durable == "":
		return fmt.Errorf("%w: JOURNEY_PROJECTOR_DURABLE is empty", ErrConfig)
	case s.AckWait < time.Second:
		return fmt.Errorf("%w: JOURNEY_PROJECTOR_ACK_WAIT must be at least 1s, got %s", ErrConfig, s.AckWait)
	case s.Grouped() && s.LeaseTTL < 2*time.Second:
		return fmt.Errorf("%w: JOURNEY_PROJECTOR_LEASE_TTL must be at least 2s, got %s", ErrConfig, s.LeaseTTL)
	}
	if err := s.validateCheckpoint(); err != nil {
		return err
	}
	if err := s.Rules().Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := s.validateAccounts(); err != nil {
		return err
	}
	return c.Stream.Validate()
}
