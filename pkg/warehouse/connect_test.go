package warehouse_test

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/warehouse"
)

func TestConnectOpensAndMigrates(t *testing.T) {
	cfg := warehousetest.Config(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := warehouse.Connect(ctx, cfg, warehouse.ConnectOptions{})
	defer c.Close()
	db, err := c.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.DB() != db || c.Err() != nil {
		t.Fatalf("after Wait: DB %p (want %p), Err %v", c.DB(), db, c.Err())
	}
	var n uint64
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = 'customer_state'", cfg.Database).Scan(&n); err != nil || n != 1 {
		t.Fatalf("customer_state not created by the migrations: %d tables, %v", n, err)
	}
}

// While ClickHouse cannot be reached, the connection keeps trying, says
// why, and closes without waiting for a server.
func TestConnectRetriesUntilClosed(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens here now
	var retries atomic.Int32
	c := warehouse.Connect(context.Background(), warehouse.Config{Addr: addr, Database: "journey", DialTimeout: time.Second},
		warehouse.ConnectOptions{Max: 50 * time.Millisecond, OnRetry: func(error, time.Duration) { retries.Add(1) }})
	deadline := time.Now().Add(30 * time.Second)
	for retries.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if retries.Load() < 3 || c.DB() != nil {
		t.Fatalf("%d retries, DB %v: want it to keep trying without a database", retries.Load(), c.DB())
	}
	if err := c.Err(); err == nil || errors.Is(err, warehouse.ErrNotConnected) {
		t.Fatalf("Err = %v, want the last attempt's error", err)
	}
	select {
	case <-c.Done():
		t.Fatal("Done closed while still connecting")
	default:
	}
	t0 := time.Now()
	c.Close()
	t.Logf("%d attempts failed (%v); Close took %s", retries.Load(), c.Err(), time.Since(t0))
}

// A bad configuration is final: retrying cannot mend it.
func TestConnectStopsOnBadConfig(t *testing.T) {
	c := warehouse.Connect(context.Background(), warehouse.Config{Addr: "127.0.0.1:1", Database: "no-dashes"}, warehouse.ConnectOptions{})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Wait(ctx)
	if !errors.Is(err, warehouse.ErrConfig) {
		t.Fatalf("Wait = %v, want an error wrapping ErrConfig", err)
	}
}
