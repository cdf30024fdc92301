package projector_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/expiryindex"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/services/projector"
)

const (
	// testChildVar makes the test binary run as a projector process
	// (runChild): the checkpoint crash test needs a process that can arm
	// the crash hook, which the production binary cannot.
	testChildVar = "JOURNEY_PROJECTOR_TEST_CHILD"
	// testCrashVar arms the child's hook (projector.SetCheckpointCrash):
	// SIGKILL after the state writes of that checkpoint, before its acks.
	testCrashVar = "JOURNEY_PROJECTOR_TEST_CRASH_CHECKPOINT"
	// testCheckpointVar runs this package's projectors (in-process and
	// children) in checkpoint mode with that interval, e.g. 500ms; unset:
	// off. The TestCheckpoint* wrappers set it for the tests they rerun.
	testCheckpointVar = "JOURNEY_TEST_PROJECTOR_CHECKPOINT"
)

// testCheckpoint is the checkpoint interval the tests run with.
func testCheckpoint() time.Duration {
	v := os.Getenv(testCheckpointVar)
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		panic(fmt.Sprintf("%s=%q: %v", testCheckpointVar, v, err))
	}
	return d
}

func runChild() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var cfg projector.Config
	if err := envconfig.Process("JOURNEY", &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if v := os.Getenv(testCrashVar); v != "" {
		n, err := strconv.Atoi(v)
		if err == nil {
			err = projector.SetCheckpointCrash(&cfg, n)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, testCrashVar, err)
			return 1
		}
	}
	if path := os.Getenv(testHeapVar); path != "" {
		heapOnSignal(path)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := projector.Run(ctx, cfg, log); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// testHeapVar names a file the child writes its heap profile to on
// SIGUSR1 (BenchmarkProjectorMemory), as path.tmp renamed to path.
const testHeapVar = "JOURNEY_PROJECTOR_TEST_HEAP_PROFILE"

func heapOnSignal(path string) {
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			runtime.GC()
			f, err := os.Create(path + ".tmp")
			if err == nil {
				err = errors.Join(pprof.WriteHeapProfile(f), f.Close(), os.Rename(path+".tmp", path))
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "heap profile:", err)
			}
		}
	}()
}

// Checkpoint mode's settings are checked: it is off by default, and an
// AckWait that a checkpoint's wait could outlast is refused.
func TestCheckpointConfig(t *testing.T) {
	var cfg projector.Config
	if err := envconfig.Process("JOURNEY_TEST_NONE", &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Projector.Checkpoint != 0 || cfg.Projector.CheckpointEvents != 50000 || cfg.Projector.IndexShards != 64 {
		t.Fatalf("defaults: checkpoint %s, events %d, index shards %d; want 0 (off), 50000 and 64",
			cfg.Projector.Checkpoint, cfg.Projector.CheckpointEvents, cfg.Projector.IndexShards)
	}
	for _, c := range []struct {
		every, ackWait time.Duration
		events, shards int
		want           string
	}{
		{10 * time.Second, 15 * time.Second, 100, 64, "JOURNEY_PROJECTOR_ACK_WAIT"},
		{-time.Second, 15 * time.Second, 100, 64, "JOURNEY_PROJECTOR_CHECKPOINT must be"},
		{time.Second, 15 * time.Second, 0, 64, "JOURNEY_PROJECTOR_CHECKPOINT_EVENTS"},
		{time.Second, 15 * time.Second, 100, 0, "JOURNEY_PROJECTOR_INDEX_SHARDS"},
		{time.Second, 15 * time.Second, 100, 5000, "JOURNEY_PROJECTOR_INDEX_SHARDS"},
	} {
		bad := cfg
		bad.Projector.Checkpoint, bad.Projector.AckWait, bad.Projector.CheckpointEvents, bad.Projector.IndexShards = c.every, c.ackWait, c.events, c.shards
		err := projector.Run(context.Background(), bad, nil)
		if !errors.Is(err, projector.ErrConfig) || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("checkpoint %s, ack wait %s, events %d: Run = %v, want a config error naming %s", c.every, c.ackWait, c.events, err, c.want)
		}
	}
}

// The key projector tests, rerun in checkpoint mode (500ms): the same
// states, rows and derived events.
func TestCheckpointProjectsJourneys(t *testing.T) { inCheckpointMode(t, TestProjectsJourneys) }

func TestCheckpointKillRestartAndPartitionsGiveSameState(t *testing.T) {
	inCheckpointMode(t, TestKillRestartAndPartitionsGiveSameState)
}

func TestCheckpointSurvivesNATSRestart(t *testing.T) { inCheckpointMode(t, TestSurvivesNATSRestart) }

func TestCheckpointSameEventOnBothPathsChangesNothingTwice(t *testing.T) {
	inCheckpointMode(t, TestSameEventOnBothPathsChangesNothingTwice)
}

// inCheckpointMode runs test with this package's projectors in checkpoint
// mode (500ms).
func inCheckpointMode(t *testing.T, test func(*testing.T)) {
	t.Setenv(testCheckpointVar, "500ms")
	test(t)
}

// A projector process in checkpoint mode SIGKILLs itself after the state
// writes of a checkpoint and before its acks (the test hook). The
// touchpoints it covered come back to the restarted process, which applies
// them to the states that checkpoint wrote: the final states hash the same
// as an uninterrupted run's (checkpoints off, on a broker of its own), and
// no derived event is in the DERIVED stream twice, nor is one missing.
func TestCheckpointKillBetweenWritesAndAcks(t *testing.T) {
	now := time.Now().UTC()
	events := journeys(21, 3000, now)

	// Uninterrupted, checkpoints off, on its own broker (its own DERIVED
	// stream, so that its derived events do not hide the other run's
	// repeats behind the duplicate window).
	t.Setenv(testCheckpointVar, "")
	ref := brokerWith(t, events)
	one := ref.config(warehousetest.Config(t))
	projectAll(t, ref.js, one)
	oneHash := stateHash(recordStates(kvStates(t, ref.js, one.Projector.Bucket)))
	oneDerived := derivedIDs(t, ref.js)

	br := brokerWith(t, events)
	cfg := br.config(warehousetest.Config(t))
	const every = 200 * time.Millisecond
	env := append(childEnv(br, cfg, "JOURNEY_PROJECTOR_BATCH_SIZE=500", "JOURNEY_PROJECTOR_ACK_WAIT=2s",
		"JOURNEY_PROJECTOR_CHECKPOINT="+every.String(), "JOURNEY_PROJECTOR_CHECKPOINT_EVENTS=1500"), testChildVar+"=1")
	logPath := filepath.Join(t.TempDir(), "projector.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("projector log:\n%s", tail(string(b), 60))
		}
	})
	run := func(extra ...string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env, cmd.Stdout, cmd.Stderr = append(env, extra...), logFile, logFile
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	const crashAt = 6
	first := run(testCrashVar + "=" + strconv.Itoa(crashAt))
	done := make(chan error, 1)
	go func() { done <- first.Wait() }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		_ = first.Process.Kill()
		t.Fatal("the crash hook did not fire within 2 minutes")
	}
	ws, ok := first.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the first projector ended with %v, not by its SIGKILL hook", first.ProcessState)
	}
	acked, drained := progress(br.js, cfg.Projector.Durable)
	if drained {
		t.Fatal("every event was acknowledged before the kill: the test proves nothing")
	}
	stored := len(kvStates(t, br.js, cfg.Projector.Bucket))
	if stored == 0 {
		t.Fatal("no state was written before the kill: the hook fired before a checkpoint's writes")
	}
	derivedAtKill := len(derivedIDs(t, br.js))

	second := run()
	t.Cleanup(func() { stopChild(t, second) })
	waitProjected(t, br.js, cfg)
	h := stateHash(recordStates(kvStates(t, br.js, cfg.Projector.Bucket)))
	derived := derivedIDs(t, br.js) // fails on a repeated (type, subject, id)
	t.Logf("killed by the hook after checkpoint %d's writes: %d of %d events acknowledged, %d customer states stored, %d derived events; "+
		"after the restart: %d derived events (uninterrupted: %d), state hash %s (uninterrupted %s)",
		crashAt, acked, len(events), stored, derivedAtKill, len(derived), len(oneDerived), h[:12], oneHash[:12])
	if h != oneHash {
		t.Fatalf("after the kill between a checkpoint's writes and its acks the state hash is %s, uninterrupted %s", h, oneHash)
	}
	// A derived event re-emitted for the same change has the same id (a
	// hash of the change) and derivedIDs fails on a repeated one. Which
	// intermediate changes there are depends on how the events were
	// batched (two surveys in one batch make one satisfaction_changed, in
	// two batches two), so the two runs need not emit the same set: the
	// ids only one of them has are counted and printed.
	both := map[string]int{}
	for _, l := range derived {
		both[l]++
	}
	for _, l := range oneDerived {
		both[l] += 2
	}
	onlyKilled, onlyOne := 0, 0
	for _, v := range both {
		switch v {
		case 1:
			onlyKilled++
		case 2:
			onlyOne++
		}
	}
	t.Logf("derived events only in the killed run: %d, only in the uninterrupted run: %d (batching, not duplicates)", onlyKilled, onlyOne)
	if len(onlyType(derived, touchpoint.KindStageChanged)) == 0 {
		t.Fatal("no stage_changed event after the kill and restart")
	}
	compareWarehouse(t, one.ClickHouse, cfg.ClickHouse)
}

// onlyType keeps the derivedIDs lines of one kind.
func onlyType(lines []string, k touchpoint.Kind) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, touchpoint.TypeOf(k)+" ") {
			out = append(out, l)
		}
	}
	return out
}

// Checkpoint mode folds the expiry index into its checkpoints: the index
// holds shards only, far fewer messages than customers, whose entries are
// every stored state's expiry. A projector without checkpoints turns them
// back into one key per customer at start, and checkpoint mode again
// deletes a customer's own key once that customer changes.
func TestCheckpointFoldsTheExpiryIndexIntoShards(t *testing.T) {
	t.Setenv(testCheckpointVar, "500ms")
	now := time.Now().UTC()
	events := journeys(5, 300, now)
	br := brokerWith(t, events)
	cfg := br.config(warehousetest.Config(t))
	stop := start(t, cfg)
	waitDrained(t, br.js, cfg.Projector.Durable, 2*time.Minute)
	stop()
	want := map[string]time.Time{}
	for id, rec := range kvStates(t, br.js, cfg.Projector.Bucket) {
		if !rec.State.Expires.IsZero() {
			want[id] = rec.State.Expires
		}
	}
	if len(want) < 50 {
		t.Fatalf("only %d of 300 customers can expire: the journeys do not exercise the index", len(want))
	}
	ix := readIndex(t, br.js, cfg.Projector.IndexBucket)
	t.Logf("checkpoint mode: %d customers can expire; the index holds %d shards and %d one-customer keys after %d messages",
		len(want), ix.shards, len(ix.single), ix.messages)
	if len(ix.single) != 0 || ix.shards == 0 || ix.shards > testPartitions*cfg.Projector.IndexShards {
		t.Errorf("checkpoint mode wrote %d one-customer keys and %d shards; want none and 1..%d", len(ix.single), ix.shards, testPartitions*cfg.Projector.IndexShards)
	}
	if ix.messages >= uint64(len(want)) {
		t.Errorf("the index took %d messages for %d customers: no fold", ix.messages, len(want))
	}
	sameExpiries(t, "the shards", ix.entries, want)

	// Without checkpoints: the shards become one-customer keys.
	t.Setenv(testCheckpointVar, "")
	off := cfg
	off.Projector.Checkpoint = 0
	stop = start(t, off)
	waitUntil(t, 30*time.Second, "the shards turned into one-customer keys", func() bool {
		ix = readIndex(t, br.js, cfg.Projector.IndexBucket)
		return ix.shards == 0 && len(ix.single) == len(want)
	})
	stop()
	sameExpiries(t, "the one-customer keys", ix.entries, want)

	// Checkpoint mode again, with a new order for three customers (a new
	// expiry): their own keys go, their shards come back; the rest keep
	// their keys.
	changed := []string{"cust/1", "cust/2", "cust/3"}
	var more []touchpoint.Event
	for i, c := range changed {
		e, err := touchpoint.New("test-sim", fmt.Sprintf("late-%d", i), c, now.Add(-time.Hour).Truncate(time.Second),
			touchpoint.Order{OrderID: fmt.Sprint("late", i), Status: "placed", Amount: touchpoint.Amount{Cents: 2500}, Currency: "EUR"})
		if err != nil {
			t.Fatal(err)
		}
		more = append(more, e)
	}
	publish(t, br.js, more)
	stop = start(t, cfg)
	waitDrained(t, br.js, cfg.Projector.Durable, time.Minute)
	waitUntil(t, 30*time.Second, "the changed customers' keys deleted", func() bool {
		ix = readIndex(t, br.js, cfg.Projector.IndexBucket)
		return len(ix.single) == len(want)-len(changed)
	})
	stop()
	for _, c := range changed {
		if ix.single[c] || ix.entries[c].IsZero() {
			t.Errorf("%s after its new event: own key %v, in a shard %v", c, ix.single[c], !ix.entries[c].IsZero())
		}
	}
	for id, rec := range kvStates(t, br.js, cfg.Projector.Bucket) {
		want[id] = rec.State.Expires
		if rec.State.Expires.IsZero() {
			delete(want, id)
		}
	}
	sameExpiries(t, "shards and keys together", ix.entries, want)
}

// index is what an expiry index bucket holds, read the way a projector
// loads it (both kinds of key, in stream order).
type index struct {
	entries  map[string]time.Time
	single   map[string]bool
	shards   int
	messages uint64
}

func readIndex(t *testing.T, js jetstream.JetStream, bucket string) index {
	t.Helper()
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ix := index{entries: map[string]time.Time{}, single: map[string]bool{}}
	for e := range w.Updates() {
		if e == nil {
			break
		}
		k, ok := expiryindex.ParseKey(e.Key())
		switch {
		case !ok:
			t.Fatalf("index key %q is neither a customer's nor a shard", e.Key())
		case k.Shard:
			ix.shards++
			if err := expiryindex.Decode(e.Value(), func(id string, at time.Time) { ix.entries[id] = at }); err != nil {
				t.Fatal(err)
			}
		default:
			at, err := expiryindex.ParseCustomerValue(e.Value())
			if err != nil {
				t.Fatal(err)
			}
			ix.single[k.CustomerID], ix.entries[k.CustomerID] = true, at
		}
	}
	st, err := js.Stream(ctx, stream.KVStream(bucket))
	if err != nil {
		t.Fatal(err)
	}
	ix.messages = st.CachedInfo().State.LastSeq
	return ix
}

func sameExpiries(t *testing.T, what string, got, want map[string]time.Time) {
	t.Helper()
	if !maps.EqualFunc(got, want, time.Time.Equal) {
		n := 0
		for id, at := range want {
			if !got[id].Equal(at) && n < 5 {
				t.Logf("%s: index %v, state %v", id, got[id], at)
				n++
			}
		}
		t.Errorf("%s hold %d expiries, the states %d, and they differ", what, len(got), len(want))
	}
}
