package projector

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/natsserver/natstest"
	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/projection"
	"github.com/klantreis/journey/pkg/stream"
)

// The checkpoint store holds writes in memory: reads see them, the bucket
// does not until flush, flush writes each customer once with
// compare-and-set on the revision the bucket held, and a customer another
// writer changed in between is reported as a conflict and dropped, not
// overwritten.
func TestCkptStoreHoldsUntilFlush(t *testing.T) {
	srv := natstest.Start(t)
	nc, js, err := stream.Connect(stream.Conn{URL: srv.ClientURL(), RequestTimeout: 10 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx := context.Background()
	kv, err := openBucket(ctx, js, "ckpt_hold", "checkpoint test", 1)
	if err != nil {
		t.Fatal(err)
	}
	base := &kvStore{js: js, kv: kv, subject: stream.KVKeyPrefix("ckpt_hold"), direct: stream.KVDirectGet("ckpt_hold"),
		timeout: 10 * time.Second, maxValue: maxStateBytes(0, nc)}
	c := newCkptStore(base)
	rec := func(id string, seq uint64) *projection.Record {
		return &projection.Record{State: journey.NewState(id), LastSeq: seq}
	}
	// b exists in the bucket before; a does not.
	revB, err := base.Put(ctx, []projection.Put{{CustomerID: "b", Record: rec("b", 1)}})
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 3; i++ { // three batches change a and b
		if _, err := c.Put(ctx, []projection.Put{{CustomerID: "a", Record: rec("a", 10+i)}, {CustomerID: "b", Record: rec("b", 10+i), Rev: revB[0]}}); err != nil {
			t.Fatal(err)
		}
	}
	if got, _, err := c.Get(ctx, "a"); err != nil || got.LastSeq != 13 {
		t.Fatalf("held a: %+v, %v; want LastSeq 13", got, err)
	}
	if _, _, err := base.Get(ctx, "a"); err == nil {
		t.Fatal("a reached the bucket before the checkpoint")
	}
	found, _, err := c.GetMany(ctx, []string{"a", "b"})
	if err != nil || found["b"].Record.LastSeq != 13 || found["b"].Rev != revB[0] {
		t.Fatalf("GetMany: %+v, %v; want the held b at the stored revision", found, err)
	}
	before := lastSeqOf(t, js, "KV_ckpt_hold")
	written, conflicts, err := c.flush(ctx)
	if err != nil || len(conflicts) != 0 || len(written) != 2 {
		t.Fatalf("flush: written %v, conflicts %v, err %v", written, conflicts, err)
	}
	if n := lastSeqOf(t, js, "KV_ckpt_hold") - before; n != 2 {
		t.Fatalf("flush stored %d messages for 2 customers changed 3 times each; want 2", n)
	}
	if got, rev, err := base.Get(ctx, "b"); err != nil || got.LastSeq != 13 || rev != written["b"] {
		t.Fatalf("stored b: %+v rev %d, %v; want LastSeq 13 at revision %d", got, rev, err, written["b"])
	}
	// Another writer changes b after our read: the checkpoint loses b's
	// compare-and-set and leaves the other writer's state in place.
	if _, err := c.Put(ctx, []projection.Put{{CustomerID: "b", Record: rec("b", 20), Rev: written["b"]}}); err != nil {
		t.Fatal(err)
	}
	if _, err := base.Put(ctx, []projection.Put{{CustomerID: "b", Record: rec("b", 99), Rev: written["b"]}}); err != nil {
		t.Fatal(err)
	}
	_, conflicts, err = c.flush(ctx)
	if err == nil || len(conflicts) != 1 || conflicts[0] != "b" {
		t.Fatalf("flush over another writer: conflicts %v, err %v; want b in conflict and an error", conflicts, err)
	}
	if got, _, _ := base.Get(ctx, "b"); got.LastSeq != 99 {
		t.Fatalf("b overwritten: LastSeq %d, want the other writer's 99", got.LastSeq)
	}
	if len(c.dirty) != 0 {
		t.Fatalf("%d states still held after the conflict", len(c.dirty))
	}
}

func lastSeqOf(t *testing.T, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	st, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}
