// Package natscluster runs a NATS cluster of separate nats-server
// processes on loopback for fault tests (internal/natsserver/natsproc:
// each node can be killed with SIGKILL and restarted on its store). The
// nodes use deploy/nats/cluster/common.conf — fsync before every ack,
// catch-up limits, lame duck — with only the addresses and the store
// directory rewritten for loopback.
package natscluster

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/natsserver/natsproc"
)

// Cluster is N running nodes.
type Cluster struct {
	Nodes []*natsproc.Server
	// Names are the nodes' server_name, as JetStream names a leader.
	Names []string
}

// Start starts n nodes (3 for R3 streams) and waits until each accepts
// client connections; they stop when the test ends. JetStream's meta
// leader may take a few seconds more: callers retry their first request.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	common, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "nats", "cluster", "common.conf"))
	if err != nil {
		t.Fatal(err)
	}
	routePorts := make([]int, n)
	var routes []string
	for i := range routePorts {
		routePorts[i] = natsproc.FreePort(t)
		routes = append(routes, "nats-route://127.0.0.1:"+strconv.Itoa(routePorts[i]))
	}
	dir := t.TempDir()
	c := &Cluster{}
	for i := 0; i < n; i++ {
		name := "journey-nats-" + strconv.Itoa(i+1)
		conf := rewrite(string(common), routePorts[i], natsproc.FreePort(t), routes)
		path := filepath.Join(dir, name+".conf")
		if err := os.WriteFile(path, []byte("server_name: "+name+"\n"+conf), 0o644); err != nil {
			t.Fatal(err)
		}
		// natsproc's -a, -p and -sd flags override listen and store_dir.
		c.Nodes = append(c.Nodes, natsproc.Start(t, "-c", path))
		c.Names = append(c.Names, name)
	}
	return c
}

// rewrite points common.conf at loopback ports: the HTTP monitor, the
// route listener and the route list, and leaves the client port and the
// store to natsproc's flags; the rest stays as deployed.
func rewrite(conf string, routePort, httpPort int, routes []string) string {
	var out []string
	inRoutes := false
	for _, line := range strings.Split(conf, "\n") {
		trim := strings.TrimSpace(line)
		switch {
		case inRoutes:
			if trim == "]" {
				inRoutes = false
				out = append(out, "  routes: ["+strings.Join(routes, ", ")+"]")
			}
			continue
		case strings.HasPrefix(trim, "routes: ["):
			inRoutes = true
			continue
		case strings.HasPrefix(trim, "http:"):
			line = "http: 127.0.0.1:" + strconv.Itoa(httpPort)
		case strings.HasPrefix(trim, "listen: 0.0.0.0:6222"):
			line = "  listen: 127.0.0.1:" + strconv.Itoa(routePort)
		case strings.HasPrefix(trim, "listen:"), strings.HasPrefix(trim, "store_dir:"):
			continue // the client port and the store come from natsproc's flags
		case strings.HasPrefix(trim, "connect_retries:"):
			line = "  connect_retries: 30"
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// URLs is every node's client URL, comma-separated (JOURNEY_NATS_URL).
func (c *Cluster) URLs() string {
	var u []string
	for _, n := range c.Nodes {
		u = append(u, n.URL())
	}
	return strings.Join(u, ",")
}

// Node returns the node with server_name name, or nil.
func (c *Cluster) Node(name string) *natsproc.Server {
	for i, n := range c.Names {
		if n == name {
			return c.Nodes[i]
		}
	}
	return nil
}

func repoRoot(t testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("natscluster: no caller")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// Leader returns the node that leads stream (a key-value bucket's stream
// is "KV_<bucket>") and its server name. It fails t when the stream's
// info cannot be read or names no node of c as its leader.
func (c *Cluster) Leader(t testing.TB, js jetstream.JetStream, stream string) (*natsproc.Server, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("%s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil || info.Cluster == nil {
		t.Fatalf("%s info: %v", stream, err)
	}
	leader := c.Node(info.Cluster.Leader)
	if leader == nil {
		t.Fatalf("%s leader %q is not a node of the cluster", stream, info.Cluster.Leader)
	}
	return leader, info.Cluster.Leader
}
