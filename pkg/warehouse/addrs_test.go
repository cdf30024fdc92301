package warehouse_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/warehouse"
)

func TestAddrs(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
		bad  string // in the error, if any
	}{
		{"127.0.0.1:9000", []string{"127.0.0.1:9000"}, ""},
		{"ch1:9000, ch2:9000 ,ch3:9440", []string{"ch1:9000", "ch2:9000", "ch3:9440"}, ""},
		{"[::1]:9000,ch2:9000", []string{"[::1]:9000", "ch2:9000"}, ""},
		{"ch1:9000,,ch2:9000", nil, "empty address"},
		{"ch1:9000,", nil, "empty address"},
		{"ch1", nil, `"ch1" is not host:port`},
		{"ch1:x", nil, `"ch1:x" needs a host and a port`},
		{":9000", nil, `":9000" needs a host`},
		{"ch1:70000", nil, "port 1..65535"},
	} {
		got, err := warehouse.Addrs(c.in)
		if c.bad == "" {
			if err != nil || !slices.Equal(got, c.want) {
				t.Errorf("Addrs(%q) = %v, %v; want %v", c.in, got, err, c.want)
			}
			continue
		}
		if !errors.Is(err, warehouse.ErrConfig) || !strings.Contains(err.Error(), c.bad) {
			t.Errorf("Addrs(%q): err %v, want ErrConfig mentioning %q", c.in, err, c.bad)
		}
	}
}

// deadAddr is a loopback port nothing listens on: a connection is refused.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

// silentAddr accepts connections and never answers: a hung server.
func silentAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// With the first of two addresses dead (refused, or accepting and silent),
// Open, Migrate, an insert and a read go to the second: clickhouse-go
// dials the addresses in order (ConnOpenInOrder). The time each takes is
// printed; with every address dead, Open fails and names them.
func TestOpenFailsOverToTheNextAddress(t *testing.T) {
	base := warehousetest.Config(t)
	for _, c := range []struct {
		name string
		dead string
	}{{"refused", deadAddr(t)}, {"silent", silentAddr(t)}} {
		t.Run(c.name, func(t *testing.T) {
			cfg := base
			cfg.Addr = c.dead + ", " + base.Addr
			cfg.DialTimeout = time.Second
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			start := time.Now()
			db, err := warehouse.Open(ctx, cfg)
			if err != nil {
				t.Fatalf("open with %s first: %v", cfg.Addr, err)
			}
			defer db.Close()
			opened := time.Since(start)
			if _, err := db.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			// Concurrent queries on the pool (new connections dial in order too).
			var wg errGroup
			for i := 0; i < 4; i++ {
				wg.Go(func() error {
					var n uint64
					return db.Conn.QueryRow(ctx, "SELECT count() FROM events").Scan(&n)
				})
			}
			if err := wg.Wait(); err != nil {
				t.Fatalf("queries with %s dead: %v", c.dead, err)
			}
			t.Logf("%s address %s listed first (dial timeout %s): opened on the next in %.2fs, migrated and queried in %.2fs",
				c.name, c.dead, cfg.DialTimeout, opened.Seconds(), time.Since(start).Seconds())
		})
	}
	t.Run("all dead", func(t *testing.T) {
		cfg := base
		cfg.Addr = deadAddr(t) + "," + deadAddr(t)
		cfg.DialTimeout = time.Second
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := warehouse.Open(ctx, cfg)
		if err == nil {
			t.Fatal("opened with every address dead")
		}
		t.Logf("every address dead: %v", err)
	})
}

// errGroup runs functions and keeps the first error.
type errGroup struct {
	errs chan error
	n    int
}

func (g *errGroup) Go(fn func() error) {
	if g.errs == nil {
		g.errs = make(chan error, 64)
	}
	g.n++
	go func() { g.errs <- fn() }()
}

func (g *errGroup) Wait() error {
	var first error
	for ; g.n > 0; g.n-- {
		if err := <-g.errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}
