package natsserver_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/natsserver"
)

// Each test starts its own server: starting and restarting servers is
// what this package does.

func start(t *testing.T, o natsserver.Options) *natsserver.Server {
	t.Helper()
	if o.StoreDir == "" {
		o.StoreDir = t.TempDir()
	}
	s, err := natsserver.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

func jsConnect(t *testing.T, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

func TestStartServesJetStream(t *testing.T) {
	s := start(t, natsserver.Options{})
	if s.Port() == 0 || s.ClientURL() != "nats://127.0.0.1:"+strconv.Itoa(s.Port()) {
		t.Fatalf("port %d url %s", s.Port(), s.ClientURL())
	}
	_, js := jsConnect(t, s.ClientURL())
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "t.1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	info, err := js.AccountInfo(ctx)
	if err != nil || info.Streams != 1 {
		t.Fatalf("account %+v %v", info, err)
	}
}

func TestStoreDirRequired(t *testing.T) {
	if _, err := natsserver.Start(natsserver.Options{}); err == nil {
		t.Fatal("started without a store dir")
	}
}

func TestRestartKeepsPortAndData(t *testing.T) {
	dir := t.TempDir()
	s, err := natsserver.Start(natsserver.Options{StoreDir: dir, SyncAlways: true})
	if err != nil {
		t.Fatal(err)
	}
	port := s.Port()
	nc, js := jsConnect(t, s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, err := js.Publish(ctx, "t.x", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	s2, err := s.Restart()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s2.Shutdown)
	if s2.Port() != port {
		t.Fatalf("port %d after restart, was %d", s2.Port(), port)
	}
	// The same client reconnects by itself and finds the data.
	deadline := time.Now().Add(10 * time.Second)
	for !nc.IsConnected() {
		if time.Now().After(deadline) {
			t.Fatal("client did not reconnect")
		}
		time.Sleep(20 * time.Millisecond)
	}
	st, err := js.Stream(ctx, "T")
	if err != nil {
		t.Fatal(err)
	}
	if n := st.CachedInfo().State.Msgs; n != 10 {
		t.Fatalf("%d messages after restart", n)
	}
}

func TestPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port

	s := start(t, natsserver.Options{Port: taken, FallbackToFree: true})
	if s.Port() == taken || s.Port() == 0 {
		t.Fatalf("fallback chose port %d (taken %d)", s.Port(), taken)
	}
	if _, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir(), Port: taken, ReadyTimeout: time.Second}); !errors.Is(err, natsserver.ErrNotReady) {
		t.Fatalf("taken port without fallback: %v", err)
	}
}

// TestDeployConfigs parses deploy/nats with the server's own parser: the
// production settings are what the comments promise.
func TestDeployConfigs(t *testing.T) {
	files := []string{"../../deploy/nats/nats-server.conf"}
	cluster, err := filepath.Glob("../../deploy/nats/cluster/nats-*.conf")
	if err != nil || len(cluster) != 3 {
		t.Fatalf("cluster configs %v %v", cluster, err)
	}
	files = append(files, cluster...)
	names := map[string]bool{}
	for _, f := range files {
		o, err := server.ProcessConfigFile(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if !o.JetStream || !o.SyncAlways || o.StoreDir == "" {
			t.Errorf("%s: jetstream %v sync always %v store %q", f, o.JetStream, o.SyncAlways, o.StoreDir)
		}
		if o.MaxPayload != 1<<20 || o.ServerName == "" || o.JetStreamMaxStore <= 0 {
			t.Errorf("%s: max payload %d, name %q, max store %d", f, o.MaxPayload, o.ServerName, o.JetStreamMaxStore)
		}
		if names[o.ServerName] {
			t.Errorf("%s: server name %s used twice", f, o.ServerName)
		}
		names[o.ServerName] = true
		if filepath.Base(filepath.Dir(f)) == "cluster" {
			if o.Cluster.Name != "journey" || len(o.Routes) != 3 || o.Cluster.Port != 6222 {
				t.Errorf("%s: cluster %q routes %v port %d", f, o.Cluster.Name, o.Routes, o.Cluster.Port)
			}
		}
	}
}
