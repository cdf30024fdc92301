package projector_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

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
	return append(append(os.Environ(),
		"JOURNEY_NATS_URL="+br.srv.ClientURL(),
		"JOURNEY_STREAM_PARTITIONS="+strconv.Itoa(testPartitions),
		"JOURNEY_CLICKHOUSE_ADDR="+cfg.ClickHouse.Addr,
		"JOURNEY_CLICKHOUSE_DATABASE="+cfg.ClickHouse.Database,
		"JOURNEY_PROJECTOR_ADDR=127.0.0.1:0",
		"JOURNEY_PROJECTOR_DURABLE="+cfg.Projector.Durable,
		"JOURNEY_PROJECTOR_BUCKET="+cfg.Projector.Bucket,
		"JOURNEY_PROJECTOR_INDEX_BUCKET="+cfg.Projector.IndexBucket,
		"JOURNEY_PROJECTOR_OUTBOX_STREAM="+cfg.Projector.OutboxStream,
		"JOURNEY_PROJECTOR_CHECKPOINT="+testCheckpoint().String(),
	), extra...)
}

// A projector killed with SIGKILL under load holds delivered, unacked
// events in every partition; they come back to its successor when the
// default AckWait (15 s) runs out. The time from the kill until every
// accepted event is applied is bounded by it, and printed.
func TestProjectorRecoveryAfterKillIsBoundedByAckWait(t *testing.T) {
	br := freshStreams(t)
	cfg := br.config(warehousetest.Config(t))
	const ackWait = 15 * time.Second // the default
	env := childEnv(br, cfg, "JOURNEY_PROJECTOR_BATCH_SIZE=500", "JOURNEY_PROJECTOR_ACK_WAIT="+ackWait.String())
	logFile, err := os.Create(filepath.Join(t.TempDir(), "projector.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	run := func() *exec.Cmd {
		cmd := exec.Command(projectorBinary(t))
		cmd.Env, cmd.Stderr = env, logFile
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
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
