package suppression_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/natsserver/natstest"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/suppression"
)

// A service user (the writer's, with deploy/nats's permissions) follows the
// list: it creates the bucket when it is missing, sees entries stored
// before and after it started, and may not store one itself.
func TestFollowSeesEveryEntryAndServicesCannotWriteOne(t *testing.T) {
	srv := natstest.StartSecure(t, stream.DefaultAccessNames())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	connect := func(user string) *stream.Conn {
		c := srv.Conn(user)
		return &c
	}
	wnc, wjs, err := stream.Connect(*connect(stream.UserWriter), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer wnc.Close()
	set, err := suppression.Follow(ctx, wjs, 1) // creates the bucket
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Check("alice"); err != nil {
		t.Fatalf("nobody is erased yet: %v", err)
	}

	anc, ajs, err := stream.Connect(*connect(stream.UserAdmin), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer anc.Close()
	kv, err := suppression.Open(ctx, ajs, 1)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	if err := suppression.Put(ctx, kv, []string{suppression.Hash("alice")}, suppression.Entry{At: at, Erasure: "e1"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for set.Check("alice") == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := set.Check("alice"); !errors.Is(err, suppression.ErrSuppressed) {
		t.Fatalf("alice after her entry: %v", err)
	}
	if set.Has("bob") || set.Check("bob") != nil {
		t.Error("bob is not erased")
	}
	// A second follower, started after the entry, has it at once.
	pnc, pjs, err := stream.Connect(*connect(stream.UserProjector), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pnc.Close()
	late, err := suppression.Follow(ctx, pjs, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !late.Has("alice") {
		t.Error("a follower started after the entry does not have it")
	}
	// The writer may read the list but not add to it.
	wkv, err := wjs.KeyValue(ctx, suppression.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
	defer pcancel()
	if err := suppression.Put(pctx, wkv, []string{suppression.Hash("mallory")}, suppression.Entry{At: at}); err == nil {
		t.Error("the writer's user stored a suppression entry")
	}
	// The collector's user follows too.
	cnc, cjs, err := stream.Connect(*connect(stream.UserCollector), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cnc.Close()
	if cs, err := suppression.Follow(ctx, cjs, 1); err != nil || !cs.Has("alice") {
		t.Errorf("collector follows: %v", err)
	}
}

func TestHashIsSHA256Hex(t *testing.T) {
	for id, want := range map[string]string{
		"":      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"alice": "2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90",
	} {
		if got := suppression.Hash(id); got != want {
			t.Errorf("Hash(%q) = %s, want %s", id, got, want)
		}
	}
	var nilSet *suppression.Set
	if nilSet.Has("alice") || nilSet.Check("alice") != nil {
		t.Error("a nil set suppresses")
	}
}
