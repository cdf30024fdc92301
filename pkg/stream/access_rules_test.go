package stream_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/natsserver/natstest"
	"github.com/klantreis/journey/pkg/ruleset"
	"github.com/klantreis/journey/pkg/stream"
)

// The projector and the api follow the live rules version with their own
// credentials; the projector reports what it runs; neither may move the
// pointer, which only journeyctl (admin) does.
func TestRulesFollowersReadButDoNotSwitch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := natstest.StartSecure(t, stream.DefaultAccessNames())
	admin := connectAs(t, s, stream.UserAdmin)
	ops, err := ruleset.Open(ctx, admin.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := ops.SetLive(ctx, ruleset.Live{Version: ruleset.Base, At: time.Now().UTC()}, 0); err != nil {
		t.Fatal(err)
	}

	proj := connectAs(t, s, stream.UserProjector)
	pops, err := ruleset.Open(ctx, proj.js, 1)
	if err != nil {
		t.Fatalf("the projector opens the ops bucket: %v", err)
	}
	if l, rev, err := pops.Live(ctx); err != nil || l.Version != ruleset.Base || rev == 0 {
		t.Fatalf("the projector reads %+v at revision %d, %v; want the pointer admin set", l, rev, err)
	}
	if err := pops.SetRunning(ctx, "p-1", "v2"); err != nil {
		t.Fatalf("the projector reports what it runs: %v", err)
	}

	api := connectAs(t, s, stream.UserAPI)
	aops, err := ruleset.Bind(ctx, api.js)
	if err != nil {
		t.Fatalf("the api binds the ops bucket: %v", err)
	}
	seen := make(chan string, 4)
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	go aops.Follow(fctx, slog.New(slog.DiscardHandler), func(v ruleset.Version, _ string) { seen <- v.Name })
	select {
	case v := <-seen:
		if v != ruleset.Base {
			t.Fatalf("the api follows %q, want %s", v, ruleset.Base)
		}
	case <-ctx.Done():
		t.Fatal("the api never saw the live version (its watch of the ops bucket is refused?)")
	}

	for name, st := range map[string]*ruleset.Store{"projector": pops, "api": aops} {
		mctx, mcancel := context.WithTimeout(context.Background(), 3*time.Second)
		err := st.SetLive(mctx, ruleset.Live{Version: "v3", At: time.Now().UTC()}, 1)
		mcancel()
		if err == nil {
			t.Errorf("the %s moved the live pointer", name)
		}
	}
	if l, _, err := ops.Live(context.Background()); err != nil || l.Version != ruleset.Base {
		t.Errorf("live is %q (%v) after the refused moves, want %s", l.Version, err, ruleset.Base)
	}
}
