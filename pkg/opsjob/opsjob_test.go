package opsjob_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/natsserver/natstest"
	"github.com/klantreis/journey/pkg/opsjob"
	"github.com/klantreis/journey/pkg/stream"
)

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string // "" accepted, else a part of the error
	}{
		{[]string{"rederive", "switch", "--version", "v2"}, ""},
		{[]string{"replay", "--to", "warehouse", "--since=2026-01-01T00:00:00Z"}, ""},
		{[]string{"status"}, ""},
		{nil, "args is empty"},
		{[]string{"erase", "c1"}, `command "erase" is not one a job runs`},
		{[]string{"rm", "-rf"}, `command "rm"`},
		{[]string{"replay", "--json"}, "--json is set by the worker"},
		{[]string{"replay", "--nats-url=nats://elsewhere:4222"}, "--nats-url is set by the worker"},
		{[]string{"replay", "--actor", "someone"}, "--actor is set by the worker"},
		{[]string{"replay", ""}, "empty"},
	} {
		err := opsjob.Validate(c.args)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v, want accepted", c.args, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, opsjob.ErrInvalid)):
			t.Errorf("%q: %v, want ErrInvalid saying %q", c.args, err, c.want)
		}
	}
}

func open(t *testing.T) *opsjob.Store {
	t.Helper()
	_, js, err := stream.Connect(stream.Conn{URL: natstest.URL(t), RequestTimeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := js.DeleteKeyValue(ctx, opsjob.Bucket); err != nil && !strings.Contains(err.Error(), "not found") {
		t.Fatal(err)
	}
	s, err := opsjob.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A job is claimed by exactly one of several racing workers, runs, and is
// claimed again only once its heartbeat has gone stale (a dead worker).
func TestClaimIsExclusiveAndResumesAStaleJob(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	now := time.Now()
	if _, err := s.Submit(ctx, []string{"erase", "c1"}, "api:x", now); !errors.Is(err, opsjob.ErrInvalid) {
		t.Fatalf("submit of erase: %v, want ErrInvalid", err)
	}
	j, err := s.Submit(ctx, []string{"rederive", "diff"}, "api:token-1", now)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := s.Get(ctx, j.ID)
	if err != nil || got.State != opsjob.Queued || got.Actor != "api:token-1" || strings.Join(got.Args, " ") != "rederive diff" {
		t.Fatalf("queued job read back as %+v (%v)", got, err)
	}
	var mu sync.Mutex
	var winners []string
	var wg sync.WaitGroup
	for _, w := range []string{"w1", "w2", "w3", "w4"} {
		wg.Go(func() {
			c, _, ok, err := s.Claim(ctx, w, now)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				winners = append(winners, w+":"+c.ID)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("4 workers raced for 1 job: %v", winners)
	if len(winners) != 1 {
		t.Fatalf("%d workers claimed the job, want 1: %v", len(winners), winners)
	}
	if _, _, ok, _ := s.Claim(ctx, "w5", now.Add(5*time.Second)); ok {
		t.Fatal("a job with a fresh heartbeat was claimed again")
	}
	c, _, ok, err := s.Claim(ctx, "w6", now.Add(s.Stale+time.Second))
	if err != nil || !ok || c.ID != j.ID || c.Attempts != 2 || c.Worker != "w6" {
		t.Fatalf("the stale job was not claimed again by w6 with attempt 2: %+v ok=%v err=%v", c, ok, err)
	}
	if _, _, err := s.Get(ctx, "job-none"); !errors.Is(err, opsjob.ErrNotFound) {
		t.Fatalf("get of a missing job: %v, want ErrNotFound", err)
	}
	list, err := s.List(ctx, 10)
	if err != nil || len(list) != 1 || list[0].State != opsjob.Running {
		t.Fatalf("list: %+v (%v)", list, err)
	}
}

// An erasure redacts a customer from the jobs wherever a job can name one
// (a whole argument, --customer=ID, a comma list, a result), and no
// other customer whose id merely contains it.
func TestRedactNamesNoErasedCustomer(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	now := time.Now()
	a, err := s.Submit(ctx, []string{"replay", "--to", "warehouse", "--customer", "c1,c1,c10"}, "api:x", now)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Submit(ctx, []string{"replay", "--to", "warehouse", "--customer=c1"}, "api:x", now.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Submit(ctx, []string{"rederive", "diff"}, "api:x", now.Add(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	j, rev, _ := s.Get(ctx, c.ID)
	j.State, j.Result = opsjob.Done, []byte(`{"pairs":[{"samples":["c1","c100"]}]}`)
	if _, err := s.Update(ctx, j, rev); err != nil {
		t.Fatal(err)
	}
	other, err := s.Submit(ctx, []string{"replay", "--customer", "c10"}, "api:x", now.Add(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.Redact(ctx, []string{"c1"}, true); err != nil || n != 3 {
		t.Fatalf("dry run counts %d jobs naming c1 (%v), want 3", n, err)
	}
	if n, err := s.Redact(ctx, []string{"c1"}, false); err != nil || n != 3 {
		t.Fatalf("redacted %d jobs (%v), want 3", n, err)
	}
	for _, id := range []string{a.ID, b.ID, c.ID, other.ID} {
		j, _, err := s.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(j)
		t.Logf("%s", raw)
		for _, bad := range []string{`"c1"`, `=c1"`, `"c1,`, `,c1"`} {
			if strings.Contains(string(raw), bad) {
				t.Errorf("job %s still names c1 (%s): %s", id, bad, raw)
			}
		}
	}
	if j, _, _ := s.Get(ctx, other.ID); strings.Join(j.Args, " ") != "replay --customer c10" {
		t.Errorf("the job of c10 only was changed: %q", j.Args)
	}
	if j, _, _ := s.Get(ctx, a.ID); !strings.Contains(strings.Join(j.Args, " "), "erased:") || !strings.Contains(strings.Join(j.Args, " "), ",c10") {
		t.Errorf("the c1,c10 job: %q, want c1 replaced and c10 kept", j.Args)
	}
	if n, _ := s.Redact(ctx, []string{"c1"}, true); n != 0 {
		t.Errorf("%d jobs name c1 after the redaction", n)
	}
}
