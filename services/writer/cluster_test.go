package writer_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/klantreis/journey/internal/chcluster"
	"github.com/klantreis/journey/internal/natsserver/natstest"
	"github.com/klantreis/journey/pkg/privacy"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
)

// startCluster starts ZooKeeper and two 18.16 replicas, or skips outside
// CI when they are not installed (CI installs them: a missing one fails).
func startCluster(t *testing.T) *chcluster.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	began := time.Now()
	c, err := chcluster.Start(ctx, t.TempDir(), 2)
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("skipping: no replicated ClickHouse here (%v); CI installs zookeeper and clickhouse", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	t.Logf("ZooKeeper and 2 replicas up in %.1fs", time.Since(began).Seconds())
	return c
}

func nodeConn(t *testing.T, addr, db string) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, Auth: clickhouse.Auth{Database: db}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func scalar(t *testing.T, conn driver.Conn, q string, args ...any) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// With JOURNEY_CLICKHOUSE_CLUSTER the migrations build replicated tables
// and Distributed ones on both replicas; an identical retried batch is
// stored once; the writer loses and duplicates nothing when the replica it
// writes to is killed with SIGKILL under load, and that replica catches up.
func TestReplicatedClickHouse(t *testing.T) {
	c := startCluster(t)
	ch := warehouse.Config{Addr: c.Addrs(), Database: "journey_cluster", User: "default",
		Cluster: chcluster.Name, InsertQuorum: 2, DialTimeout: 2 * time.Second, MaxOpenConns: 4}
	ctx := context.Background()
	db, err := warehouse.Open(ctx, ch)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for range 2 { // idempotent
		if _, err := db.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	nodes := []driver.Conn{nodeConn(t, c.Replicas[0].Addr(), ch.Database), nodeConn(t, c.Replicas[1].Addr(), ch.Database)}

	t.Run("migrations", func(t *testing.T) {
		for i, n := range nodes {
			for name, engine := range map[string]string{
				"events_local": "ReplicatedMergeTree", "events": "Distributed",
				"event_ids_local": "ReplicatedMergeTree", "event_ids": "Distributed",
				"customer_state_local": "ReplicatedReplacingMergeTree", "customer_state": "Distributed",
				"satisfaction_responses_local": "ReplicatedReplacingMergeTree", "events_dead_local": "ReplicatedMergeTree",
			} {
				var got string
				if err := n.QueryRow(ctx, "SELECT engine FROM system.tables WHERE database = ? AND name = ?", ch.Database, name).Scan(&got); err != nil || got != engine {
					t.Errorf("replica %d: %s has engine %q (%v), want %s", i+1, name, got, err, engine)
				}
			}
			// The Distributed table got the columns migration 12 added.
			if m := scalar(t, n, "SELECT count() FROM system.columns WHERE database = ? AND table = 'events' AND name IN ('id_hash','content_hash','revision')", ch.Database); m != 3 {
				t.Errorf("replica %d: the Distributed events has %d of the 3 identity columns", i+1, m)
			}
		}
	})

	t.Run("identical retried batch is stored once", func(t *testing.T) {
		rows := make([]warehouse.EventRow, 500)
		for i := range rows {
			row, err := eventRow(t, 1_000_000+i)
			if err != nil {
				t.Fatal(err)
			}
			rows[i] = row
		}
		for range 2 {
			if err := db.InsertEvents(ctx, rows); err != nil {
				t.Fatal(err)
			}
		}
		for i, n := range nodes {
			if err := n.Exec(ctx, "SYSTEM SYNC REPLICA events_local"); err != nil {
				t.Fatal(err)
			}
			if err := n.Exec(ctx, "SYSTEM SYNC REPLICA event_ids_local"); err != nil {
				t.Fatal(err)
			}
			ev := scalar(t, n, "SELECT count() FROM events_local WHERE stream_seq >= 1000000")
			ids := scalar(t, n, "SELECT count() FROM event_ids_local WHERE stream_seq >= 1000000")
			t.Logf("replica %d after the same 500-row batch twice: events_local %d, event_ids_local %d", i+1, ev, ids)
			if ev != 500 || ids != 500 {
				t.Errorf("replica %d: %d events and %d identities, want 500 of each", i+1, ev, ids)
			}
		}
		if n := scalar(t, nodes[0], "SELECT count() FROM events WHERE stream_seq >= 1000000"); n != 500 {
			t.Errorf("through the Distributed table: %d rows, want 500", n)
		}
	})

	t.Run("replica killed under load", func(t *testing.T) { replicaKilledUnderLoad(t, c, ch, nodes) })
	// After the kill test: the customers erased here are suppressed, and
	// the writer there would rightly drop their events.
	t.Run("an erasure reaches every replica", func(t *testing.T) { erasureOnTheCluster(t, db, nodes) })
}

// insertBatch inserts gen's events i in [from, to) through db, with the
// cluster's insert quorum, as one batch (one part on each replica).
func insertBatch(t *testing.T, db *warehouse.DB, from, to int) error {
	rows := make([]warehouse.EventRow, 0, to-from)
	for i := from; i < to; i++ {
		row, err := eventRow(t, i)
		if err != nil {
			return err
		}
		rows = append(rows, row)
	}
	return db.InsertEvents(context.Background(), rows)
}

// eventRow is gen's event i of an hour ago as the row of stream sequence i.
func eventRow(t testing.TB, i int) (warehouse.EventRow, error) {
	ev := gen(t, i, time.Now().Add(-time.Hour))
	pl, err := touchpoint.Validate(&ev, time.Now())
	if err != nil {
		return warehouse.EventRow{}, err
	}
	return warehouse.NewEventRow(uint64(i), &ev, &pl, time.Unix(1_700_000_000, 0)), nil
}

// customersOf is the customer ids of gen's events i in [from, to).
func customersOf(t *testing.T, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, gen(t, i, time.Now()).Subject)
	}
	return out
}

// erasureOnTheCluster erases customers through a connection to both
// replicas: the mutations run on the replicated _local tables (a
// Distributed table stores nothing), and each replica ends without a row
// of theirs and with every other row. 18.16 leaves a table's most recent
// insert-quorum part unmutated until the next quorum insert, so both cases
// are run: the erased customers' rows all in older parts, on a quiet
// cluster; and some in the most recent part, while inserts go on.
func erasureOnTheCluster(t *testing.T, db *warehouse.DB, nodes []driver.Conn) {
	ctx := context.Background()
	_, js, err := stream.Connect(stream.Conn{URL: natstest.URL(t), RequestTimeout: 10 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := privacy.Open(ctx, js, db, privacy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// gen's customer is cust-(i % 997): 1_000_000… is cust-9…, 2_000_091…
	// is cust-109…, and the trickle's 3_000_000 + 997m + 673 + j is cust-(700+j).
	gone := customersOf(t, 1_000_000, 1_000_100) // cust-9…108
	insertBatch(t, db, 2_000_091, 2_000_591)     // cust-109…608: the most recent part
	erase(t, svc, nodes, gone, "stream_seq >= 1000000 AND stream_seq < 2000000", 400, "quiet")
	gone2 := customersOf(t, 2_000_091, 2_000_141) // cust-109…158, in the most recent part
	if db.Features.Major == 18 {
		// The rows of gone2 in the most recent quorum part stay until an
		// insert; the erasure says so when its time is up, and resumes.
		short, cancel := context.WithTimeout(ctx, 8*time.Second)
		_, err := svc.Erase(short, "", gone2)
		cancel()
		t.Logf("erasure of rows in the most recent quorum part with no insert: %v", err)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "most recent insert-quorum part") {
			t.Fatalf("the erasure with no insert ended with %v, want the wait for the quorum part to time out", err)
		}
	}
	type trickle struct {
		batches int
		err     error
	}
	stop, trickled := make(chan struct{}), make(chan trickle)
	go func() {
		for m := 0; ; m++ {
			select {
			case <-stop:
				trickled <- trickle{batches: m}
				return
			case <-time.After(300 * time.Millisecond):
			}
			from := 3_000_000 + 997*m + 673
			if err := insertBatch(t, db, from, from+20); err != nil {
				<-stop
				trickled <- trickle{m, err}
				return
			}
		}
	}()
	erase(t, svc, nodes, gone2, "stream_seq >= 2000000 AND stream_seq < 3000000", 450, "while inserts go on")
	close(stop)
	tr := <-trickled
	if tr.err != nil {
		t.Fatal(tr.err)
	}
	t.Logf("%d batches of 20 inserted during the second erasure", tr.batches)
}

// erase erases customers and checks, on each replica, that no row of
// theirs is left in events_local and event_ids_local and that keep rows of
// batch (a stream_seq range) are.
func erase(t *testing.T, svc *privacy.Service, nodes []driver.Conn, customers []string, batch string, keep uint64, how string) {
	t.Helper()
	ctx := context.Background()
	before := scalar(t, nodes[0], "SELECT count() FROM events_local WHERE has(?, customer_id)", customers)
	began := time.Now()
	ectx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	rc, err := svc.Erase(ectx, "", customers)
	if err != nil {
		t.Fatal(err)
	}
	pending := scalar(t, nodes[0], "SELECT count() FROM system.mutations WHERE database = currentDatabase() AND table = 'events_local' AND is_done = 0")
	t.Logf("%s: %d mutations of events_local not done on replica 1 when the erasure ended", how, pending)
	t.Logf("%s: erased %d customers (%d rows of events_local) on 2 replicas in %.1fs", how, len(customers), before, time.Since(began).Seconds())
	for _, s := range rc.Stores {
		if strings.HasPrefix(s.Store, "table events_local") && s.Count != before {
			t.Errorf("%s: the receipt counts %d in %s, want the %d rows of the customers", how, s.Count, s.Store, before)
		}
	}
	for i, n := range nodes {
		for _, table := range []string{"events_local", "event_ids_local"} {
			left := scalar(t, n, "SELECT count() FROM "+table+" WHERE has(?, customer_id)", customers)
			kept := scalar(t, n, "SELECT count() FROM "+table+" WHERE "+batch)
			t.Logf("%s: replica %d, %s: %d rows of the erased, %d of the batch", how, i+1, table, left, kept)
			if left != 0 || kept != keep {
				t.Errorf("%s: replica %d: %s holds %d rows of the erased customers and %d of the batch, want 0 and %d", how, i+1, table, left, kept, keep)
			}
		}
	}
}

func replicaKilledUnderLoad(t *testing.T, c *chcluster.Cluster, ch warehouse.Config, nodes []driver.Conn) {
	ctx := context.Background()
	e := newEnv(t, ch, natstest.URL(t))
	e.openDB()
	before := e.count("SELECT count() FROM events_local")
	cfg := e.config(nil)
	e.inProc(cfg)
	const n, chunk = 30_000, 1000
	at := time.Now().Add(-time.Hour)
	var published atomic.Int64
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		for from := 0; from < n; from += chunk {
			published.Add(int64(e.publish(genMsgs(t, from, chunk, at))))
			time.Sleep(150 * time.Millisecond)
		}
	}()
	// Kill the replica the writer's connections use (the first address)
	// once rows flow, keep it down a while, start it again.
	waitFor(t, time.Minute, "rows to arrive", func() bool {
		return scalar(t, nodes[1], "SELECT count() FROM events_local")-before > 3000
	})
	killedAt := time.Now()
	stored := scalar(t, nodes[1], "SELECT count() FROM events_local") - before
	c.Replicas[0].Kill()
	t.Logf("SIGKILLed replica 1 with %d rows stored", stored)
	time.Sleep(4 * time.Second)
	duringOutage := scalar(t, nodes[1], "SELECT count() FROM events_local") - before
	if err := c.Replicas[0].Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("replica 1 back after %.1fs; rows stored on replica 2 during the outage: %d", time.Since(killedAt).Seconds(), duringOutage-stored)
	<-pubDone
	if published.Load() != n {
		t.Fatalf("JetStream stored %d of %d", published.Load(), n)
	}
	waitFor(t, 2*time.Minute, "the writer to drain", func() bool {
		return scalar(t, nodes[1], "SELECT count() FROM events_local")-before >= n && e.drained("writer")
	})
	t.Logf("all %d stored %.1fs after the kill", n, time.Since(killedAt).Seconds())
	fresh := nodeConn(t, c.Replicas[0].Addr(), ch.Database)
	syncStart := time.Now()
	for _, tbl := range []string{"events_local", "event_ids_local"} {
		if err := fresh.Exec(ctx, "SYSTEM SYNC REPLICA "+tbl); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("replica 1 synced in %.1fs", time.Since(syncStart).Seconds())
	for i, conn := range []driver.Conn{fresh, nodes[1]} {
		rows := scalar(t, conn, "SELECT count() FROM events_local") - before
		uniq := scalar(t, conn, "SELECT uniqExact(source, id) FROM events_local WHERE stream_seq < 1000000")
		// Every stored event must be in the identity index, or a replay
		// would store it again; an entry written twice (the writer
		// re-indexes after an uncertain insert) is read as one.
		ids := scalar(t, conn, "SELECT uniqExact(source, id) FROM event_ids_local WHERE stream_seq < 1000000")
		entries := scalar(t, conn, "SELECT count() FROM event_ids_local WHERE stream_seq < 1000000")
		t.Logf("replica %d: %d rows, %d unique (source,id), %d indexed identities (%d entries); lost %d, duplicated %d", i+1, rows, uniq, ids, entries, int64(n)-int64(uniq), int64(rows)-int64(uniq))
		if rows != n || uniq != n || ids != n {
			t.Errorf("replica %d: %d rows, %d unique (source, id), %d identities; want %d of each", i+1, rows, uniq, ids, n)
		}
	}
}
