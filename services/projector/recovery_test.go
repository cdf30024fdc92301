package projector_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/killtest"
	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/services/projector"
)

var built struct {
	sync.Once
	path string
	err  error
}

// projectorBinary builds cmd/journey-projector once per test binary: the
// kill tests need a process of its own to SIGKILL.
func projectorBinary(t *testing.T) string {
	t.Helper()
	built.Do(func() {
		dir, err := os.MkdirTemp("", "journey-projector-")
		if err != nil {
			built.err = err
			return
		}
		built.path = filepath.Join(dir, "journey-projector")
		if out, err := exec.Command("go", "build", "-o", built.path, "./cmd/journey-projector").CombinedOutput(); err != nil {
			built.err = err
			t.Logf("build output:\n%s", out)
		}
	})
	if built.err != nil {
		t.Fatalf("build journey-projector: %v", built.err)
	}
	return built.path
}

// childEnv is the environment of a projector process on cfg.
func childEnv(br *broker, cfg projector.Config, extra ...string) []string {
	env := childEnvOn(br.srv.ClientURL(), cfg.ClickHouse.Addr, cfg.ClickHouse.Database,
		cfg.Projector.Durable, cfg.Projector.Bucket, cfg.Projector.IndexBucket, cfg.Projector.OutboxStream)
	return append(append(env, "JOURNEY_PROJECTOR_CHECKPOINT="+testCheckpoint().String()), extra...)
}

// childRunner returns a function that starts a projector process of bin
// on env each time it is called, every one's stderr in one log file of
// the test (the child may outlive the test's logger).
func childRunner(t *testing.T, bin string, env []string) func() *exec.Cmd {
	t.Helper()
	logFile, err := os.Create(filepath.Join(t.TempDir(), "projector.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	return func() *exec.Cmd {
		cmd := exec.Command(bin)
		cmd.Env, cmd.Stderr = env, logFile
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
}

// killMidwayAndRestart starts a projector process on env (cfg's names),
// SIGKILLs it once it has acknowledged a quarter of the total events
// (killtest.Midway), starts it again and waits until the restarted one has
// projected everything into the bucket and ClickHouse (waitProjected).
func killMidwayAndRestart(t *testing.T, br *broker, cfg projector.Config, env []string, total int) {
	t.Helper()
	run := childRunner(t, projectorBinary(t), env)
	cmd := run()
	killtest.Midway(t, cmd, "the projector", uint64(total)/4, 2*time.Minute, func() (uint64, bool) {
		return progress(br.js, cfg.Projector.Durable)
	})
	cmd = run()
	t.Cleanup(func() { stopChild(t, cmd) })
	waitProjected(t, br.js, cfg)
}

// A projector killed with SIGKILL under load holds delivered, unacked
// events in every partition; they come back to its successor when the
// default AckWait (15 s) runs out. The time from the kill until every
// accepted event is applied is bounded by it, and printed.
func TestProjectorRecoveryAfterKillIsBoundedByAckWait(t *testing.T) {
	br := freshStreams(t)
	cfg := br.config(warehousetest.Config(t))
	const ackWait = 15 * time.Second // the default
	run := childRunner(t, projectorBinary(t), childEnv(br, cfg, "JOURNEY_PROJECTOR_BATCH_SIZE=500", "JOURNEY_PROJECTOR_ACK_WAIT="+ackWait.String()))
	first := run()
	// Live load, about 1 000 events/s, until the kill.
	now := time.Now().UTC()
	events := journeys(11, 3000, now)
	var sent int
	deadline := time.Now().Add(4 * time.Second)
	for sent < len(events) && time.Now().Before(deadline) {
		n := min(100, len(events)-sent)
		publish(t, br.js, events[sent:sent+n])
		sent += n
		time.Sleep(100 * time.Millisecond)
	}
	// Then a burst, and the kill while the projector holds part of it.
	publish(t, br.js, events[sent:])
	sent = len(events)
	waitHolding(t, br, cfg.Projector.Durable, time.Minute)
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	_ = first.Wait()
	acked, done := progress(br.js, cfg.Projector.Durable)
	if done {
		t.Fatal("the projector had applied everything before the kill: the test proves nothing")
	}
	second := run()
	t.Cleanup(func() { stopChild(t, second) })
	waitDrained(t, br.js, cfg.Projector.Durable, 2*time.Minute)
	took := time.Since(killed)
	t.Logf("projector killed after %d of %d events were acknowledged; its successor had applied all %.1fs after the kill (AckWait %s)",
		acked, sent, took.Seconds(), ackWait)
	ref := reference(t, events[:sent], now)
	states := recordStates(kvStates(t, br.js, cfg.Projector.Bucket))
	if stateHash(states) != stateHash(ref) {
		t.Fatal("after the kill and restart the states differ from the rules applied to the events")
	}
	if took > ackWait+15*time.Second {
		t.Fatalf("caught up %.1fs after the kill: more than AckWait %s plus 15s", took.Seconds(), ackWait)
	}
}

// waitHolding waits until the projector holds unacknowledged events, so that
// a kill then loses work in flight; it fails (rather than spin for ever) if
// the projector drained everything first or never started.
func waitHolding(t *testing.T, br *broker, durable string, limit time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(limit); !holding(t, br, durable); {
		if time.Now().After(deadline) {
			acked, done := progress(br.js, durable)
			t.Fatalf("the projector held no unacknowledged events within %s (acknowledged %d, drained %v): nothing to kill it in the middle of", limit, acked, done)
		}
		time.Sleep(time.Millisecond)
	}
}

// holding reports whether a partition consumer has delivered events that
// are not acknowledged yet.
func holding(t *testing.T, br *broker, durable string) bool {
	t.Helper()
	for p := 0; p < testPartitions; p++ {
		c, err := br.js.Consumer(context.Background(), stream.TouchpointStream, fmt.Sprintf("%s-p%d", durable, p))
		if err != nil {
			continue
		}
		if info, err := c.Info(context.Background()); err == nil && info.NumAckPending > 0 {
			return true
		}
	}
	return false
}
