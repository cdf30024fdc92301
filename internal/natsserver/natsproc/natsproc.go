// Package natsproc runs the real nats-server as a separate process, for the
// fault tests that must kill the broker with SIGKILL: an embedded server
// dies with the test binary. The binary is built once from the
// nats-server module version in go.mod and kept in the temporary
// directory, so every package's tests share it.
package natsproc

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/freeport"
)

const module = "github.com/nats-io/nats-server/v2"

var buildOnce struct {
	sync.Once
	path string
	err  error
}

// Binary returns the path of a nats-server binary of the module version
// this test binary was built with, building it on first use.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() { buildOnce.path, buildOnce.err = build() })
	if buildOnce.err != nil {
		t.Fatalf("natsproc: %v", buildOnce.err)
	}
	return buildOnce.path
}

func build() (string, error) {
	version := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == module {
				version = d.Version
			}
		}
	}
	path := filepath.Join(os.TempDir(), "journey-nats-server-"+version)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	tmp := fmt.Sprintf("%s.%d", path, os.Getpid())
	cmd := exec.Command("go", "build", "-o", tmp, module)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", module, err, out)
	}
	// Rename is atomic: packages building at once each install a whole binary.
	return path, os.Rename(tmp, path)
}

// Server is one nats-server process with JetStream, on a fixed loopback
// port and store directory, so that a restart finds its streams again.
type Server struct {
	t    testing.TB
	bin  string
	Port int
	Dir  string
	args []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// Start runs a server on a free port with its store in a new temporary
// directory, waits until it accepts connections, and stops it when the
// test ends. args are passed to nats-server as well.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	s := &Server{t: t, bin: Binary(t), Port: FreePort(t), Dir: t.TempDir(), args: args}
	s.start()
	t.Cleanup(func() { s.Kill() })
	return s
}

// URL is the client URL.
func (s *Server) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(s.Port) }

func (s *Server) start() {
	s.t.Helper()
	log, err := os.OpenFile(filepath.Join(s.Dir, "server.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	args := append([]string{"-a", "127.0.0.1", "-p", strconv.Itoa(s.Port), "-js", "-sd", filepath.Join(s.Dir, "js")}, s.args...)
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done, s.log = cmd, done, log
	s.mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(s.Port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			b, _ := os.ReadFile(filepath.Join(s.Dir, "server.log"))
			s.t.Fatalf("natsproc: nats-server exited at start:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("natsproc: nats-server not listening on %d after 20s", s.Port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill sends SIGKILL and waits until the process is gone: no shutdown,
// no flush, as a crash or a power cut would.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done, log := s.cmd, s.done, s.log
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
	log.Close()
}

// Restart starts the killed server again on the same port and store.
func (s *Server) Restart() {
	s.t.Helper()
	s.start()
}

// FreePort returns a loopback TCP port that is free now
// ([freeport.Pick]: below the kernel's ephemeral range, so that no other
// process is handed it before the server binds it).
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freeport.Pick()
	if err != nil {
		t.Fatal(err)
	}
	return p
}
