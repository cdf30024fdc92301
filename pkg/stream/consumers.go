package stream

import (
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The services' durable consumers and the projector's outbox stream, kept
// beside the topology so that a change to one is seen with the others and
// with the permissions ([AccessNames.Permissions]) that name them.

// WriterConsumerConfig is the writer's durable consumer of every fact
// event. It never gives up on a message (MaxDeliver -1): poison is
// dead-lettered by the writer, everything else must eventually be stored.
func WriterConsumerConfig(durable string, ackWait time.Duration, maxAckPending int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       durable,
		Description:   "journey writer: touchpoints into ClickHouse",
		FilterSubject: AllFactsFilter,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1,
		MaxAckPending: maxAckPending,
	}
}

// ProjectorPartitionDurable names the projector's consumer of partition
// p: "<durable>-p<p>".
func ProjectorPartitionDurable(durable string, p int) string { return durable + "-p" + strconv.Itoa(p) }

// ProjectorOutboxDurable names the projector's consumer of its outbox
// (the loader into ClickHouse): "<durable>-warehouse".
func ProjectorOutboxDurable(durable string) string { return durable + "-warehouse" }

// ProjectorPartitionConsumerConfig is the projector's durable consumer of
// partition p of the touchpoint stream, from the start, never giving up
// on a message. batchSize bounds what is in flight: the batch being
// written plus the next (MaxAckPending 3 batches).
func ProjectorPartitionConsumerConfig(durable string, p int, ackWait time.Duration, batchSize int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       ProjectorPartitionDurable(durable, p),
		Description:   "journey projector, partition " + strconv.Itoa(p),
		FilterSubject: PartitionFilter(p),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxDeliver:    -1,
		MaxAckPending: 3 * batchSize,
	}
}

// ProjectorOutboxConsumerConfig is the outbox loader's durable consumer
// named name (see [ProjectorOutboxDurable]), never giving up on a row set.
func ProjectorOutboxConsumerConfig(name string, ackWait time.Duration) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "journey projector: outbox rows to ClickHouse",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1,
		MaxAckPending: 1000,
	}
}

// ProjectorOutboxConfig is the projector's outbox: a work queue of
// warehouse rows waiting for their ClickHouse insert, bounded (a week,
// 8 GiB, new rows refused beyond) while ClickHouse is away.
func ProjectorOutboxConfig(name string, replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        name,
		Description: "journey projector outbox: warehouse rows waiting for their ClickHouse insert",
		Subjects:    []string{ProjectorOutboxSubject(name)},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		MaxAge:      7 * 24 * time.Hour,
		MaxBytes:    8 << 30,
		Discard:     jetstream.DiscardNew,
	}
}

// KVStream is the stream that holds KV bucket's entries: "KV_<bucket>".
func KVStream(bucket string) string { return "KV_" + bucket }

// KVKeyPrefix is the subject prefix of bucket's keys, "$KV.<bucket>.": a
// key's subject is the prefix and the key.
func KVKeyPrefix(bucket string) string { return "$KV." + bucket + "." }

// KVDirectGet is the subject of direct gets from bucket's stream (batched
// reads of several keys).
func KVDirectGet(bucket string) string { return "$JS.API.DIRECT.GET." + KVStream(bucket) }

// IsWrongLastSeq reports a compare-and-set lost on a key-value update or
// an expected-last-sequence publish: another writer got there first.
func IsWrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// HoldInProgress sends an in-progress ack for every message each interval
// until the returned stop is called, so that work that outlasts the
// consumer's AckWait (a slow warehouse, a large batch) is not redelivered
// while it is still being done. stop returns once the last ack was sent.
// An interval of a quarter of the AckWait leaves room for a lost ack or two.
func HoldInProgress(msgs []jetstream.Msg, interval time.Duration) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				for _, m := range msgs {
					_ = m.InProgress()
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}
