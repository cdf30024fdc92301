package stream

import (
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The replay stream carries copies of touchpoints that `journeyctl replay`
// re-delivers to journey's own consumers (--to warehouse, --to projector):
//
//	replay.<target>.<partition>.<kind>.<customer-key>
//
// A copy keeps the stored subject's tail, so the partition and the customer
// key are the original's, and it carries the original stream sequence in
// [HeaderReplaySeq]. The writer and the projector read it through a
// consumer of their own when configured to (JOURNEY_WRITER_INPUT=replay,
// JOURNEY_PROJECTOR_INPUT=replay); their identity checks make a copy of an
// event they already hold a no-op. TOUCHPOINTS itself is never written:
// a replay must not add facts to the source of truth.
const (
	ReplayStream = "REPLAY"
	replayPrefix = "replay."

	// ReplayWarehouse and ReplayProjector are the targets of the replay
	// stream, the second token of its subjects.
	ReplayWarehouse = "warehouse"
	ReplayProjector = "projector"

	// HeaderReplaySeq is the TOUCHPOINTS sequence a replayed copy was read
	// from; the projector orders its writes by it as it would the original.
	HeaderReplaySeq = "Journey-Replay-Seq"
	// HeaderReplayID names the replay that published the copy.
	HeaderReplayID = "Journey-Replay-Id"
)

// ReplayConfig is the replay stream's configuration. Copies are transient:
// it is a work queue, so a copy is removed once its reader acknowledged it
// (the writer's and the projector's replay consumers filter disjoint
// subjects, as a work queue requires), and one no reader takes is dropped
// after DerivedMaxAge (30 days by default). The touchpoints stay the truth.
func (t Topology) ReplayConfig() jetstream.StreamConfig {
	c := t.streamConfig(ReplayStream, "journey replays: copies of touchpoints re-delivered to the writer or the projector (journeyctl replay)",
		replayPrefix+"*.*.*.*", t.DerivedMaxAge)
	c.Retention = jetstream.WorkQueuePolicy
	c.Discard = jetstream.DiscardOld
	c.MaxMsgSize = maxMsgSize
	return c
}

// ReplayPrefix is the subject prefix of one target in the replay stream
// ("replay.warehouse").
func ReplayPrefix(target string) string { return replayPrefix + target }

// ReplayFilter selects a target's copies, all partitions.
func ReplayFilter(target string) string { return replayPrefix + target + ".*.*.*" }

// ReplayPartitionFilter selects a target's copies of one partition.
func ReplayPartitionFilter(target string, p int) string {
	return replayPrefix + target + "." + strconv.Itoa(p) + ".*.*"
}

// ReplayCustomerFilter selects one customer's copies, every target and
// partition (an erasure purges them).
func ReplayCustomerFilter(customerID string) string {
	return replayPrefix + "*.*.*." + CustomerKey(customerID)
}

// StoredTail is a stored touchpoint subject without its "touchpoint."
// prefix: "<partition>.<kind>.<customer-key>".
func StoredTail(subject string) (string, bool) {
	if _, _, _, ok := ParseStoredSubject(subject); !ok {
		return "", false
	}
	return subject[len(touchpointPrefix):], true
}

// StoredSubject maps a replayed copy's subject back to the stored touchpoint
// subject it was copied from (replay.<target>.<tail> -> touchpoint.<tail>),
// so that [CheckStored] judges a copy as it would the original. Any other
// subject is returned as it is.
func StoredSubject(subject string) string {
	rest, ok := strings.CutPrefix(subject, replayPrefix)
	if !ok {
		return subject
	}
	_, tail, ok := strings.Cut(rest, ".")
	if !ok {
		return subject
	}
	return touchpointPrefix + tail
}

// OriginalSeq is the TOUCHPOINTS sequence of a message: seq itself for a
// touchpoint, the [HeaderReplaySeq] a replayed copy carries (seq when it
// carries none), so that rows and states of a copy name the original.
func OriginalSeq(subject string, h nats.Header, seq uint64) uint64 {
	if !strings.HasPrefix(subject, replayPrefix) {
		return seq
	}
	if v, err := strconv.ParseUint(h.Get(HeaderReplaySeq), 10, 64); err == nil && v > 0 {
		return v
	}
	return seq
}
