package stream

import (
	"slices"
	"testing"
	"time"
)

// Every consumer the services create is one the permissions grant to
// their user: the names are built by the same functions.
func TestConsumerConfigsAreThePermittedOnes(t *testing.T) {
	t.Parallel()
	n := DefaultAccessNames()
	perms, err := n.Permissions()
	if err != nil {
		t.Fatal(err)
	}
	grants := func(user, streamName, durable string) bool {
		return slices.Contains(perms[user].Publish, "$JS.API.CONSUMER.CREATE."+streamName+"."+durable+".>")
	}
	w := WriterConsumerConfig(n.WriterConsumer, time.Minute, 100)
	if !grants(UserWriter, TouchpointStream, w.Durable) || w.FilterSubject != AllFactsFilter || w.MaxDeliver != -1 {
		t.Fatalf("writer consumer %+v not as permitted", w)
	}
	for p := range n.Partitions {
		c := ProjectorPartitionConsumerConfig(n.ProjectorDurable, p, time.Minute, 500)
		if !grants(UserProjector, TouchpointStream, c.Durable) || c.FilterSubject != PartitionFilter(p) || c.MaxAckPending != 1500 {
			t.Fatalf("partition %d consumer %+v not as permitted", p, c)
		}
	}
	o := ProjectorOutboxConsumerConfig(ProjectorOutboxDurable(n.ProjectorDurable), time.Minute)
	if !grants(UserProjector, n.OutboxStream, o.Durable) {
		t.Fatalf("outbox consumer %q not permitted", o.Durable)
	}
	if s := ProjectorOutboxConfig(n.OutboxStream, 1); !slices.Contains(perms[UserProjector].Publish, s.Subjects[0]) {
		t.Fatalf("outbox subject %q not permitted", s.Subjects[0])
	}
	for _, b := range []string{n.StateBucket, n.IndexBucket} {
		if !slices.Contains(perms[UserProjector].Publish, KVKeyPrefix(b)+">") ||
			!slices.Contains(perms[UserProjector].Publish, KVDirectGet(b)+".>") {
			t.Fatalf("bucket %s: key prefix %q or direct get %q not permitted", b, KVKeyPrefix(b), KVDirectGet(b))
		}
	}
}
