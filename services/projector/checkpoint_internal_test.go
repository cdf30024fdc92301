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
	js, base := testKVStore(t, "ckpt_hold")
	ctx := context.Background()
	c := newCkptStore(base)
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
	written, conflicts, err := flush(ctx, c)
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
	_, conflicts, err = flush(ctx, c)
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

// A checkpoint written in the background: the frozen states stay
// readable while the worker holds newer ones on top, a written state moves
// the newer one onto the revision it wrote (so the next compare-and-set
// expects it), a state not written is held again unless a newer one is,
// and a lost compare-and-set drops what was held on top of it.
func TestCkptStoreFreezeAndLand(t *testing.T) {
	_, base := testKVStore(t, "ckpt_land")
	ctx := context.Background()
	c := newCkptStore(base)
	put := func(id string, seq, rev uint64) {
		t.Helper()
		if _, err := c.Put(ctx, []projection.Put{{CustomerID: id, Record: rec(id, seq), Rev: rev}}); err != nil {
			t.Fatal(err)
		}
	}
	seqOf := func(id string) uint64 {
		t.Helper()
		got, _, err := c.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return got.LastSeq
	}
	put("a", 1, 0)
	put("b", 1, 0)
	gen := c.freeze()
	if seqOf("a") != 1 || len(c.dirty) != 0 {
		t.Fatalf("frozen a not readable, or still held: %d held", len(c.dirty))
	}
	put("a", 2, 0) // a batch applied while the checkpoint is written
	written, conflicts, err := base.writeStates(ctx, gen)
	if err != nil || len(conflicts) != 0 || len(written) != 2 {
		t.Fatalf("write: %v %v %v", written, conflicts, err)
	}
	c.land(gen, written, conflicts)
	if e := c.dirty["a"]; e.rev != written["a"] {
		t.Fatalf("held a at revision %d after the checkpoint wrote %d", e.rev, written["a"])
	}
	if _, held := c.dirty["b"]; held || seqOf("b") != 1 {
		t.Fatal("b, written and not changed since, is still held or not read from the bucket")
	}
	// The next checkpoint's compare-and-set expects what the first wrote.
	if w2, c2, err := flush(ctx, c); err != nil || len(c2) != 0 || len(w2) != 1 {
		t.Fatalf("second checkpoint: %v %v %v", w2, c2, err)
	}
	if got, _, _ := base.Get(ctx, "a"); got.LastSeq != 2 {
		t.Fatalf("stored a LastSeq %d, want 2", got.LastSeq)
	}

	// Not written: held again, unless a newer state is held.
	_, revA, _ := base.Get(ctx, "a")
	put("a", 3, revA)
	put("c", 1, 0)
	gen = c.freeze()
	put("c", 2, 0)
	c.land(gen, nil, nil)
	if c.dirty["a"].rev != revA || seqOf("a") != 3 || seqOf("c") != 2 {
		t.Fatalf("after a failed checkpoint: a rev %d seq %d, c seq %d; want %d, 3, 2", c.dirty["a"].rev, seqOf("a"), seqOf("c"), revA)
	}

	// A lost compare-and-set drops the state and what was held on top.
	gen = c.freeze()
	put("a", 4, revA)
	if _, err := base.Put(ctx, []projection.Put{{CustomerID: "a", Record: rec("a", 99), Rev: revA}}); err != nil {
		t.Fatal(err)
	}
	written, conflicts, err = base.writeStates(ctx, gen)
	if err == nil || len(conflicts) != 1 || conflicts[0] != "a" {
		t.Fatalf("write over another writer: %v %v %v", written, conflicts, err)
	}
	c.land(gen, written, conflicts)
	if _, held := c.dirty["a"]; held || seqOf("a") != 99 {
		t.Fatalf("a after a lost compare-and-set: held %v, seq %d; want the other writer's 99", held, seqOf("a"))
	}
	if c.flying != nil {
		t.Fatal("flying states left after land")
	}
}

// flush is a whole checkpoint of c's states in one go, as the worker's
// is: freeze, write, land.
func flush(ctx context.Context, c *ckptStore) (map[string]uint64, []string, error) {
	gen := c.freeze()
	written, conflicts, err := c.base.writeStates(ctx, gen)
	c.land(gen, written, conflicts)
	return written, conflicts, err
}

// testKVStore is a state store on a bucket of a server of the test's own.
func testKVStore(t *testing.T, bucket string) (jetstream.JetStream, *kvStore) {
	t.Helper()
	srv := natstest.Start(t)
	nc, js, err := stream.Connect(stream.Conn{URL: srv.ClientURL(), RequestTimeout: 10 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	kv, err := openBucket(context.Background(), js, bucket, "checkpoint test", 1)
	if err != nil {
		t.Fatal(err)
	}
	return js, &kvStore{js: js, kv: kv, subject: stream.KVKeyPrefix(bucket), direct: stream.KVDirectGet(bucket),
		timeout: 10 * time.Second, maxValue: maxStateBytes(0, nc)}
}

func rec(id string, seq uint64) *projection.Record {
	return &projection.Record{State: journey.NewState(id), LastSeq: seq}
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
