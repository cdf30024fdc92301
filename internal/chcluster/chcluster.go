// Package chcluster runs a replicated ClickHouse on loopback for tests:
// one ZooKeeper (Debian's zookeeper package, run with java) and N
// clickhouse-server replicas of one shard (internal/chserver), each with
// the macros, the cluster and the ZooKeeper client configuration that
// Replicated and Distributed tables and ON CLUSTER DDL need.
//
// ClickHouse 18.16 has no Keeper of its own; current servers use ClickHouse
// Keeper with the same <zookeeper> client configuration (docs/scaling.md).
package chcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/klantreis/journey/internal/chserver"
)

// Name is the cluster's name in <remote_servers>.
const Name = "journey"

// ErrNoZooKeeper: java or Debian's zookeeper jars are missing.
var ErrNoZooKeeper = errors.New("chcluster: ZooKeeper is not installed (apt-get install zookeeper)")

// zkJars are Debian's zookeeper package's jars.
var zkJars = []string{"zookeeper.jar", "zookeeper-jute.jar", "slf4j-api.jar", "slf4j-simple.jar"}

// Cluster is a running ZooKeeper and its replicas.
type Cluster struct {
	dir      string
	zk       *exec.Cmd
	zkDone   chan struct{}
	zkPort   int
	Replicas []*Replica
}

// Replica is one server of the shard.
type Replica struct {
	*chserver.Server
	opts chserver.Options
}

// Start starts ZooKeeper, waits until it answers ruok, then starts n
// replicas in parallel; it returns once all accept native connections.
func Start(ctx context.Context, dir string, n int) (*Cluster, error) {
	if _, err := exec.LookPath("java"); err != nil {
		return nil, ErrNoZooKeeper
	}
	var cp []string
	for _, j := range zkJars {
		p := filepath.Join("/usr/share/java", j)
		if _, err := os.Stat(p); err != nil {
			return nil, ErrNoZooKeeper
		}
		cp = append(cp, p)
	}
	if _, err := chserver.Find(""); err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir}
	if err := c.startZK(ctx, strings.Join(cp, ":")); err != nil {
		return nil, err
	}
	ports := make([][3]int, n)
	for i := range ports {
		for j := range ports[i] {
			p, err := chserver.FreePort()
			if err != nil {
				c.Stop()
				return nil, err
			}
			ports[i][j] = p
		}
	}
	type result struct {
		i   int
		r   *Replica
		err error
	}
	res := make(chan result, n)
	for i := 0; i < n; i++ {
		o := chserver.Options{
			Dir:      filepath.Join(dir, "ch"+strconv.Itoa(i+1)),
			TCPPort:  ports[i][0],
			HTTPPort: ports[i][1],
			ExtraXML: c.replicaXML(i, ports),
		}
		go func(i int, o chserver.Options) {
			s, err := chserver.Start(ctx, o)
			res <- result{i, &Replica{Server: s, opts: o}, err}
		}(i, o)
	}
	c.Replicas = make([]*Replica, n)
	var errs []error
	for range n {
		r := <-res
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		c.Replicas[r.i] = r.r
	}
	if err := errors.Join(errs...); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// Addrs is the replicas' native addresses, comma-separated, for
// JOURNEY_CLICKHOUSE_ADDR.
func (c *Cluster) Addrs() string {
	var a []string
	for _, r := range c.Replicas {
		a = append(a, r.Addr())
	}
	return strings.Join(a, ",")
}

// Addr is the address a replica has whether it runs or not.
func (r *Replica) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.opts.TCPPort) }

// Kill stops a replica with SIGKILL (the server's whole process).
func (r *Replica) Kill() {
	if r.Server != nil {
		r.Server.Kill() // os.Process.Kill: SIGKILL
	}
}

// Restart starts a killed or stopped replica again on its data and ports.
func (r *Replica) Restart(ctx context.Context) error {
	if r.Server != nil {
		r.Server.Stop()
	}
	s, err := chserver.Start(ctx, r.opts)
	if err != nil {
		return err
	}
	r.Server = s
	return nil
}

// Stop stops the replicas, then ZooKeeper.
func (c *Cluster) Stop() {
	for _, r := range c.Replicas {
		if r != nil && r.Server != nil {
			r.Server.Stop()
		}
	}
	if c.zk != nil {
		_ = c.zk.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.zkDone:
		case <-time.After(10 * time.Second):
			_ = c.zk.Process.Kill()
			<-c.zkDone
		}
	}
}

func (c *Cluster) startZK(ctx context.Context, classpath string) error {
	zdir := filepath.Join(c.dir, "zk")
	if err := os.MkdirAll(filepath.Join(zdir, "data"), 0o755); err != nil {
		return err
	}
	port, err := chserver.FreePort()
	if err != nil {
		return err
	}
	c.zkPort = port
	cfg := "tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir=" + filepath.Join(zdir, "data") +
		"\nclientPort=" + strconv.Itoa(port) + "\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n" +
		"4lw.commands.whitelist=ruok,srvr\nmaxClientCnxns=0\n"
	cfgPath := filepath.Join(zdir, "zoo.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	log, err := os.Create(filepath.Join(zdir, "zk.log"))
	if err != nil {
		return err
	}
	// A small heap and no JIT tiers beyond C1: it starts faster and the
	// test machine's cores are shared.
	cmd := exec.Command("java", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp", classpath,
		"org.apache.zookeeper.server.quorum.QuorumPeerMain", cfgPath)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("chcluster: start zookeeper: %w", err)
	}
	c.zk, c.zkDone = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); log.Close(); close(c.zkDone) }()
	deadline := time.Now().Add(30 * time.Second)
	for !ruok(port) {
		select {
		case <-c.zkDone:
			return fmt.Errorf("chcluster: zookeeper exited at start; see %s", log.Name())
		case <-ctx.Done():
			c.Stop()
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.Stop()
			return fmt.Errorf("chcluster: zookeeper did not answer ruok within 30s; see %s", log.Name())
		}
	}
	return nil
}

// ruok is ZooKeeper's liveness check, "ruok" answered by "imok", and
// then "srvr" answered with its mode: imok comes as soon as the port is
// bound, before the server serves sessions.
func ruok(port int) bool {
	return fourLetter(port, "ruok", "imok") && fourLetter(port, "srvr", "Mode: standalone")
}

func fourLetter(port int, cmd, want string) bool {
	conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte(cmd)); err != nil {
		return false
	}
	b, _ := io.ReadAll(conn)
	return strings.Contains(string(b), want)
}

// replicaXML is replica i's replication configuration: ZooKeeper, its
// macros, the cluster of all replicas (one shard, internal replication:
// each replica replicates itself, a Distributed insert goes to one) and
// the ON CLUSTER queue.
func (c *Cluster) replicaXML(i int, ports [][3]int) string {
	var b strings.Builder
	b.WriteString("\n  <interserver_http_port>" + strconv.Itoa(ports[i][2]) + "</interserver_http_port>\n")
	b.WriteString("  <interserver_http_host>127.0.0.1</interserver_http_host>\n")
	b.WriteString("  <zookeeper><node><host>127.0.0.1</host><port>" + strconv.Itoa(c.zkPort) + "</port></node>" +
		"<session_timeout_ms>6000</session_timeout_ms></zookeeper>\n")
	b.WriteString("  <macros><shard>01</shard><replica>r" + strconv.Itoa(i+1) + "</replica></macros>\n")
	b.WriteString("  <remote_servers><" + Name + "><shard><internal_replication>true</internal_replication>\n")
	for _, p := range ports {
		b.WriteString("    <replica><host>127.0.0.1</host><port>" + strconv.Itoa(p[0]) + "</port></replica>\n")
	}
	b.WriteString("  </shard></" + Name + "></remote_servers>\n")
	b.WriteString("  <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>\n")
	return b.String()
}
