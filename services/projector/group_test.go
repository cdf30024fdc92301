package projector_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/services/projector"
)

// Group settings of the tests: short, so that a takeover is quick to see.
const (
	groupLeaseTTL = 3 * time.Second
	groupAckWait  = 5 * time.Second
)

// member is one projector process of a group test.
type member struct {
	cmd *exec.Cmd
	log string
}

func (m *member) pid() int { return m.cmd.Process.Pid }

func startMember(t *testing.T, env []string, name string) *member {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(projectorBinary(t))
	cmd.Env, cmd.Stderr = env, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m := &member{cmd: cmd, log: path}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			stopChild(t, cmd)
		}
		_ = f.Close()
		if t.Failed() {
			raw, _ := os.ReadFile(path)
			t.Logf("log of %s (pid %d):\n%s", name, m.pid(), tail(string(raw), 40))
		}
	})
	return m
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// owners reads the group's leases: partition -> owning pid (absent: unowned).
func owners(t *testing.T, js jetstream.JetStream, durable string) map[int]int {
	t.Helper()
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, durable+"-leases")
	if err != nil {
		return nil
	}
	out := map[int]int{}
	for p := 0; p < testPartitions; p++ {
		e, err := kv.Get(ctx, fmt.Sprintf("p%d", p))
		if err != nil {
			continue // absent, deleted, or the bucket not answering: unowned for the caller
		}
		pidStr, _, _ := strings.Cut(string(e.Value()), "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil {
			t.Fatalf("lease p%d holds %q, not a member id", p, e.Value())
		}
		out[p] = pid
	}
	return out
}

// counts is how many partitions each pid owns.
func counts(own map[int]int) map[int]int {
	out := map[int]int{}
	for _, pid := range own {
		out[pid]++
	}
	return out
}

// waitOwners waits until ok holds for the leases and returns how long it took.
func waitOwners(t *testing.T, js jetstream.JetStream, durable string, limit time.Duration, what string, ok func(map[int]int) bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		if own := owners(t, js, durable); ok(own) {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s; leases %v", what, limit, owners(t, js, durable))
	return 0
}

// balanced reports whether every partition is owned, only by the given
// pids, each owning its share (total/n or one more).
func balanced(own map[int]int, pids ...int) bool {
	if len(own) != testPartitions {
		return false
	}
	c := counts(own)
	lo, hi := testPartitions/len(pids), (testPartitions+len(pids)-1)/len(pids)
	for _, pid := range pids {
		if c[pid] < lo || c[pid] > hi {
			return false
		}
	}
	return len(c) == len(pids)
}

func groupEnv(br *broker, cfg projector.Config) []string {
	return childEnv(br, cfg, "JOURNEY_PROJECTOR_PARTITIONS=group", "JOURNEY_PROJECTOR_BATCH_SIZE=500",
		"JOURNEY_PROJECTOR_LEASE_TTL="+groupLeaseTTL.String(), "JOURNEY_PROJECTOR_ACK_WAIT="+groupAckWait.String())
}

// paced publishes events in slices of n every gap, until they run out or
// stop is closed; it returns how many it published.
func paced(t *testing.T, js jetstream.JetStream, events []touchpoint.Event, n int, gap time.Duration, stop <-chan struct{}) int {
	sent := 0
	for sent < len(events) {
		select {
		case <-stop:
			return sent
		default:
		}
		k := min(n, len(events)-sent)
		publishRetrying(t, js, events[sent:sent+k]) // not publish: this runs off the test's goroutine
		sent += k
		time.Sleep(gap)
	}
	return sent
}

// Three projector processes form a group with no partition list. Under
// load one that owns partitions is SIGKILLed while it holds unacknowledged
// events: its partitions move to the two living members within a bound
// (the lease TTL plus two renewal periods), every event is applied within
// the lease TTL plus AckWait, and the final states equal both the pure
// rules and a single uninterrupted projector run over the same stream.
func TestProjectorGroupSurvivesKillOfOneOfThree(t *testing.T) {
	br := freshStreams(t)
	cfg := br.config(warehousetest.Config(t))
	env := groupEnv(br, cfg)
	ms := []*member{startMember(t, env, "m0"), startMember(t, env, "m1"), startMember(t, env, "m2")}
	formed := waitOwners(t, br.js, cfg.Projector.Durable, 30*time.Second, "three members share the partitions", func(own map[int]int) bool {
		return balanced(own, ms[0].pid(), ms[1].pid(), ms[2].pid())
	})
	t.Logf("group of 3 formed %.1fs after start: leases %v", formed.Seconds(), owners(t, br.js, cfg.Projector.Durable))

	now := time.Now().UTC()
	events := journeys(23, 4000, now)
	third := len(events) / 3
	// Live load (about 2 000 events/s), then the kill during it.
	sent := paced(t, br.js, events[:third], 200, 100*time.Millisecond, nil)
	own := owners(t, br.js, cfg.Projector.Durable)
	victim := ms[0]
	for _, m := range ms { // the member with the most partitions
		if counts(own)[m.pid()] > counts(own)[victim.pid()] {
			victim = m
		}
	}
	stop := make(chan struct{})
	loaded := make(chan int)
	go func() { loaded <- paced(t, br.js, events[third:], 200, 100*time.Millisecond, stop) }()
	waitHolding(t, br, cfg.Projector.Durable, time.Minute)
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	_ = victim.cmd.Wait()
	acked, _ := progress(br.js, cfg.Projector.Durable)
	var living []int
	for _, m := range ms {
		if m != victim {
			living = append(living, m.pid())
		}
	}
	moved := waitOwners(t, br.js, cfg.Projector.Durable, groupLeaseTTL+10*time.Second, "the killed member's partitions move to the living", func(own map[int]int) bool {
		return balanced(own, living...)
	})
	sent += <-loaded
	if sent != len(events) {
		t.Fatalf("published %d of %d", sent, len(events))
	}
	waitDrained(t, br.js, cfg.Projector.Durable, 2*time.Minute)
	caught := time.Since(killed)
	t.Logf("member pid %d (%d of %d partitions) SIGKILLed under load, holding unacknowledged events, the partition consumers' ack floors summing to %d; "+
		"its partitions were owned by the 2 living members %.2fs after the kill (lease TTL %s), every one of the %d events applied %.1fs after it (AckWait %s); leases %v",
		victim.pid(), counts(own)[victim.pid()], testPartitions, acked, moved.Seconds(), groupLeaseTTL, len(events), caught.Seconds(), groupAckWait,
		owners(t, br.js, cfg.Projector.Durable))
	if moved > groupLeaseTTL+2*groupLeaseTTL/6+2*time.Second {
		t.Errorf("partitions moved %.2fs after the kill: more than the lease TTL %s plus two renewals and 2s", moved.Seconds(), groupLeaseTTL)
	}
	if caught > groupLeaseTTL+groupAckWait+20*time.Second {
		t.Errorf("caught up %.1fs after the kill: more than lease TTL + AckWait + 20s", caught.Seconds())
	}

	group := stateHash(recordStates(kvStates(t, br.js, cfg.Projector.Bucket)))
	if ref := stateHash(reference(t, events, now)); group != ref {
		t.Fatal("the group's states after the kill differ from the rules applied to the events")
	}
	// A single uninterrupted projector, over the same stream, with its own
	// consumers and buckets.
	single := cfg
	single.Projector.Durable, single.Projector.Bucket = randName("single"), randName("st_")
	single.Projector.IndexBucket, single.Projector.OutboxStream = randName("ix_"), randName("OUTBOX_")
	startMember(t, childEnv(br, single, "JOURNEY_PROJECTOR_PARTITIONS=all", "JOURNEY_PROJECTOR_BATCH_SIZE=500"), "single")
	waitDrained(t, br.js, single.Projector.Durable, 2*time.Minute)
	one := stateHash(recordStates(kvStates(t, br.js, single.Projector.Bucket)))
	t.Logf("state hash of %d customers: group with a kill %s, single uninterrupted run %s", 4000, group[:16], one[:16])
	if one != group {
		t.Fatal("the group's states differ from a single uninterrupted run's")
	}
}

// A group of one owns every partition; a second and a third member that
// join take their shares (2/2, then 2/1/1) within a few renewal periods,
// under load, and a member that leaves (SIGTERM) hands its partitions back
// at once. The states stay those of the rules.
func TestProjectorGroupRebalancesOnJoinAndLeave(t *testing.T) {
	br := freshStreams(t)
	cfg := br.config(warehousetest.Config(t))
	env := groupEnv(br, cfg)
	a := startMember(t, env, "a")
	waitOwners(t, br.js, cfg.Projector.Durable, 30*time.Second, "one member owns every partition", func(own map[int]int) bool {
		return balanced(own, a.pid())
	})
	now := time.Now().UTC()
	events := journeys(29, 3000, now)
	loaded := make(chan int)
	go func() { loaded <- paced(t, br.js, events, 100, 100*time.Millisecond, nil) }()

	b := startMember(t, env, "b")
	two := waitOwners(t, br.js, cfg.Projector.Durable, 30*time.Second, "a second member takes half", func(own map[int]int) bool {
		return balanced(own, a.pid(), b.pid())
	})
	c := startMember(t, env, "c")
	three := waitOwners(t, br.js, cfg.Projector.Durable, 30*time.Second, "a third member takes its share", func(own map[int]int) bool {
		return balanced(own, a.pid(), b.pid(), c.pid())
	})
	left := time.Now()
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := b.cmd.Wait(); err != nil {
		t.Fatalf("member b did not stop cleanly: %v", err)
	}
	waitOwners(t, br.js, cfg.Projector.Durable, 30*time.Second, "the leaver's partitions are shared again", func(own map[int]int) bool {
		return balanced(own, a.pid(), c.pid())
	})
	back := time.Since(left)
	sent := <-loaded
	waitDrained(t, br.js, cfg.Projector.Durable, 2*time.Minute)
	t.Logf("rebalanced under load: 1→2 members in %.2fs, 2→3 in %.2fs (from each start, lease TTL %s); a member that left with SIGTERM "+
		"had its partitions shared again %.2fs after the signal; %d events applied; leases %v",
		two.Seconds(), three.Seconds(), groupLeaseTTL, back.Seconds(), sent, owners(t, br.js, cfg.Projector.Durable))
	if got, want := stateHash(recordStates(kvStates(t, br.js, cfg.Projector.Bucket))), stateHash(reference(t, events[:sent], now)); got != want {
		t.Fatal("after the rebalances the states differ from the rules applied to the events")
	}
}
