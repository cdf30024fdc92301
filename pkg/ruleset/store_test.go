package ruleset_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/natsserver/natstest"
	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/ruleset"
	"github.com/klantreis/journey/pkg/stream"
)

func TestStorePointerVersionsAndFollow(t *testing.T) {
	nc, js, err := stream.Connect(stream.Conn{URL: natstest.URL(t), ReconnectWait: 100 * time.Millisecond, RequestTimeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := ruleset.Bind(ctx, js); err == nil {
		t.Fatal("Bind found a bucket nobody created")
	}
	ops, err := ruleset.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	live, rev, err := ops.Live(ctx)
	if err != nil || live.Version != ruleset.Base || rev != 0 {
		t.Fatalf("no pointer: %+v rev %d %v; want the base at 0", live, rev, err)
	}
	if _, _, err := ops.Get(ctx, "v2"); !errors.Is(err, ruleset.ErrNotFound) {
		t.Fatalf("Get v2: %v, want ErrNotFound", err)
	}
	r := journey.Rules{LoyalOrders: 2, LoyalWindow: 365 * journey.Day, InactiveAfter: 365 * journey.Day}
	for _, name := range []string{"v10", "v2", "v3"} {
		if _, err := ops.Put(ctx, ruleset.Record{Version: ruleset.Version{Name: name, Rules: r}, State: ruleset.StateReady}, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ops.Put(ctx, ruleset.Record{Version: ruleset.Version{Name: "v2"}}, 0); !errors.Is(err, ruleset.ErrConflict) {
		t.Fatalf("second create of v2: %v, want ErrConflict", err)
	}
	all, err := ops.List(ctx)
	if err != nil || len(all) != 3 || all[0].Name != "v2" || all[1].Name != "v3" || all[2].Name != "v10" {
		t.Fatalf("List = %+v %v, want v2 v3 v10", all, err)
	}

	got := make(chan string, 10)
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	go ops.Follow(fctx, nil, func(v ruleset.Version, prev string) { got <- v.Name + "<" + prev })
	next := func() string {
		select {
		case s := <-got:
			return s
		case <-time.After(10 * time.Second):
			t.Fatal("Follow said nothing")
			return ""
		}
	}
	if s := next(); s != "v1<" {
		t.Fatalf("first = %q, want the base", s)
	}
	if err := ops.SetLive(ctx, ruleset.Live{Version: "v2", Previous: "v1"}, rev); err != nil {
		t.Fatal(err)
	}
	if s := next(); s != "v2<v1" {
		t.Fatalf("after the switch = %q", s)
	}
	// A stale revision loses: two operators cannot interleave.
	if err := ops.SetLive(ctx, ruleset.Live{Version: "v3", Previous: "v1"}, rev); !errors.Is(err, ruleset.ErrConflict) {
		t.Fatalf("stale SetLive: %v, want ErrConflict", err)
	}
	live, rev, _ = ops.Live(ctx)
	if err := ops.SetLive(ctx, ruleset.Live{Version: "v1", Previous: "v2"}, rev); err != nil {
		t.Fatal(err)
	}
	if s := next(); s != "v1<v2" {
		t.Fatalf("after the rollback = %q", s)
	}

	if err := ops.SetRunning(ctx, "proj a/1", "v1"); err != nil {
		t.Fatal(err)
	}
	run, err := ops.RunningAll(ctx)
	if err != nil || len(run) != 1 || run[0].Version != "v1" || run[0].Instance != "proj a/1" {
		t.Fatalf("running %+v %v", run, err)
	}
	if err := ops.ClearRunning(ctx, "proj a/1"); err != nil {
		t.Fatal(err)
	}
	if run, err := ops.RunningAll(ctx); err != nil || len(run) != 0 {
		t.Fatalf("after clear: %+v %v", run, err)
	}
}
