// Package chserver runs a project-local clickhouse-server as a child
// process: generated config, data in a directory the caller chooses, free
// ports, stopped with the caller. It is how the local stack and the tests get
// a real ClickHouse without touching the machine's system service.
package chserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/klantreis/journey/internal/freeport"
)

// ErrNotInstalled: no clickhouse-server binary was found.
var ErrNotInstalled = errors.New("chserver: clickhouse-server is not installed")

// Options configure a local server.
type Options struct {
	// Dir holds data, config and logs; it is created if missing and reused
	// on the next start, so data survives restarts.
	Dir string
	// TCPPort and HTTPPort; 0 picks free ports.
	TCPPort, HTTPPort int
	// Binary to run; default: clickhouse-server on PATH, then
	// /usr/bin/clickhouse server.
	Binary string
	// StartTimeout bounds the wait until the native port accepts
	// connections (default 60s: a first start on a slow disk is slow).
	StartTimeout time.Duration
	// Nice is the CPU niceness of the server and all its threads, 0–19
	// (default 0). On a machine where ClickHouse shares the cores with
	// the broker and the projector, its inserts and merges otherwise take
	// the CPU in bursts that delay projecting (see docs/perf-projector.md).
	// Needs the coreutils nice command.
	Nice int
	// Users, if any, are the only users that can log in (see [Role]); the
	// default user then gets a random password nobody is told. Without
	// Users the default user logs in without a password, as before.
	Users []User
	// TLSCert and TLSKey (PEM files) open a native TLS port
	// (tcp_port_secure): SecurePort, or a free port if 0.
	SecurePort      int
	TLSCert, TLSKey string
	// ExtraXML is inserted into config.xml as is (inside <yandex>): the
	// replication settings of internal/chcluster, for one.
	ExtraXML string
}

// Role is what a user may do. ClickHouse 18.16 has no GRANT; users.xml
// profiles give the nearest thing: readonly, or read-write without DDL
// (allow_ddl = 0 refuses CREATE, ALTER — and so ALTER … DELETE — DROP,
// TRUNCATE, RENAME), or everything. docs/security.md has the GRANTs of
// current servers.
type Role string

const (
	// RoleAdmin may do everything: migrations, mutations (erasure).
	RoleAdmin Role = "admin"
	// RoleReadWrite may read and insert, no DDL: the writer, the projector.
	RoleReadWrite Role = "readwrite"
	// RoleReadOnly may only read (readonly = 1): the api.
	RoleReadOnly Role = "readonly"
)

// User is one login of the local server.
type User struct {
	Name, Password string
	Role           Role
	// Database, if set, is the only database the user may use (system
	// tables stay readable).
	Database string
}

// Server is a running child server.
type Server struct {
	cmd  *exec.Cmd
	opts Options
	done chan struct{}
	err  error
}

// Find returns the command line that starts a server, or ErrNotInstalled.
func Find(binary string) ([]string, error) {
	if binary != "" {
		return []string{binary}, nil
	}
	if p, err := exec.LookPath("clickhouse-server"); err == nil {
		return []string{p}, nil
	}
	if p, err := exec.LookPath("clickhouse"); err == nil {
		return []string{p, "server"}, nil
	}
	return nil, ErrNotInstalled
}

// Start writes the config and starts the server, returning once it accepts
// native connections.
func Start(ctx context.Context, o Options) (*Server, error) {
	argv, err := Find(o.Binary)
	if err != nil {
		return nil, err
	}
	if o.Dir == "" {
		return nil, errors.New("chserver: Dir is required")
	}
	if o, err = configure(o); err != nil {
		return nil, err
	}
	s, err := launch(argv, o)
	if err != nil {
		return nil, err
	}
	if err := s.waitListening(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// configure makes o.Dir absolute and its directories, picks the free
// ports and the default timeout, and writes the config files; it returns
// the options completed.
func configure(o Options) (Options, error) {
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return o, err
	}
	o.Dir = dir
	for _, d := range []string{"data", "tmp", "user_files", "format_schemas", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return o, err
		}
	}
	if o.TCPPort == 0 {
		if o.TCPPort, err = FreePort(); err != nil {
			return o, err
		}
	}
	if o.HTTPPort == 0 {
		if o.HTTPPort, err = FreePort(); err != nil {
			return o, err
		}
	}
	if o.TLSCert != "" && o.SecurePort == 0 {
		if o.SecurePort, err = FreePort(); err != nil {
			return o, err
		}
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 60 * time.Second
	}
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(configXML(o)), 0o644); err != nil {
		return o, err
	}
	users, err := usersXML(o.Users)
	if err != nil {
		return o, err
	}
	// Passwords are in it: readable by the server's user only.
	if err := os.WriteFile(filepath.Join(dir, "users.xml"), []byte(users), 0o600); err != nil {
		return o, err
	}
	if err := os.Chmod(filepath.Join(dir, "users.xml"), 0o600); err != nil {
		return o, err
	}
	// A stale pid file from a killed run stops the server from starting.
	_ = os.Remove(filepath.Join(dir, "data", "status"))
	return o, nil
}

// launch starts argv on the config configure wrote, with o's niceness,
// and returns the running server without waiting for it to listen.
func launch(argv []string, o Options) (*Server, error) {
	if o.Nice < 0 || o.Nice > 19 {
		return nil, fmt.Errorf("chserver: Nice must be 0..19, got %d", o.Nice)
	}
	args := append(argv[1:], "--config-file="+filepath.Join(o.Dir, "config.xml"))
	if o.Nice > 0 {
		// A niceness set at exec is inherited by every thread the server
		// starts; renicing a running server changes its main thread only.
		nice, err := exec.LookPath("nice")
		if err != nil {
			return nil, fmt.Errorf("chserver: Nice %d needs the nice command: %w", o.Nice, err)
		}
		args = append([]string{"-n", strconv.Itoa(o.Nice), argv[0]}, args...)
		argv = []string{nice}
	}
	cmd := exec.Command(argv[0], args...)
	cmd.Dir = o.Dir
	out, err := os.OpenFile(filepath.Join(o.Dir, "log", "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = out, out
	// Own process group: a Ctrl-C to the parent is handled by the parent,
	// which then stops the server cleanly.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("chserver: start %s: %w", argv[0], err)
	}
	s := &Server{cmd: cmd, opts: o, done: make(chan struct{})}
	go func() {
		s.err = cmd.Wait()
		out.Close()
		close(s.done)
	}()
	return s, nil
}

// waitListening waits until the native port accepts connections; the
// server is stopped if ctx or StartTimeout ends the wait first.
func (s *Server) waitListening(ctx context.Context) error {
	deadline := time.Now().Add(s.opts.StartTimeout)
	for {
		c, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("chserver: exited at start (%v); see %s", s.err, s.LogHint())
		case <-ctx.Done():
			s.Stop()
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("chserver: not listening after %s; see %s", s.opts.StartTimeout, s.LogHint())
		}
	}
}

// Addr is the native protocol address (host:port).
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.opts.TCPPort) }

// Pid is the server's process id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// HTTPAddr is the HTTP interface address.
func (s *Server) HTTPAddr() string { return "127.0.0.1:" + strconv.Itoa(s.opts.HTTPPort) }

// LogHint names the log files to read when the server misbehaves.
func (s *Server) LogHint() string {
	return strings.Join([]string{filepath.Join(s.opts.Dir, "log", "err.log"), filepath.Join(s.opts.Dir, "log", "stdout.log")}, ", ")
}

// Stop sends SIGTERM and waits up to 30s for a clean shutdown, then kills.
func (s *Server) Stop() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return nil
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		return errors.New("chserver: killed after 30s without a clean shutdown")
	}
}

// Kill stops the server at once (for outage tests).
func (s *Server) Kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// Restart starts the server again on the same ports and data.
func (s *Server) Restart(ctx context.Context) (*Server, error) {
	s.Stop()
	return Start(ctx, s.opts)
}

// FreePort returns a loopback TCP port that is free now
// ([freeport.Pick]: below the kernel's ephemeral range).
func FreePort() (int, error) { return freeport.Pick() }

func configXML(o Options) string {
	d := o.Dir
	return `<?xml version="1.0"?>
<!-- Generated by journey's chserver; edits are overwritten at the next start. -->
<yandex>
  <logger><level>warning</level><log>` + d + `/log/server.log</log><errorlog>` + d + `/log/err.log</errorlog><size>50M</size><count>2</count></logger>
  <http_port>` + strconv.Itoa(o.HTTPPort) + `</http_port>
  <tcp_port>` + strconv.Itoa(o.TCPPort) + `</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>` + d + `/data/</path>
  <tmp_path>` + d + `/tmp/</tmp_path>
  <user_files_path>` + d + `/user_files/</user_files_path>
  <format_schema_path>` + d + `/format_schemas/</format_schema_path>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <max_concurrent_queries>200</max_concurrent_queries>
  <max_connections>1024</max_connections>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <users_config>` + d + `/users.xml</users_config>
  <mlock_executable>false</mlock_executable>` + secureXML(o) + o.ExtraXML + `
</yandex>
`
}

// secureXML is the TLS port's configuration, if one is asked for.
func secureXML(o Options) string {
	if o.SecurePort == 0 || o.TLSCert == "" || o.TLSKey == "" {
		return ""
	}
	return `
  <tcp_port_secure>` + strconv.Itoa(o.SecurePort) + `</tcp_port_secure>
  <openSSL><server>
    <certificateFile>` + xmlText(o.TLSCert) + `</certificateFile>
    <privateKeyFile>` + xmlText(o.TLSKey) + `</privateKeyFile>
    <verificationMode>none</verificationMode>
    <loadDefaultCAFile>false</loadDefaultCAFile>
    <cacheSessions>true</cacheSessions>
    <disableProtocols>sslv2,sslv3,tlsv1,tlsv1_1</disableProtocols>
    <preferServerCiphers>true</preferServerCiphers>
  </server></openSSL>`
}

// SecureAddr is the native TLS address ("" without a TLS port).
func (s *Server) SecureAddr() string {
	if s.opts.SecurePort == 0 {
		return ""
	}
	return "127.0.0.1:" + strconv.Itoa(s.opts.SecurePort)
}

func xmlText(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// usersXML renders users.xml: the profiles of the roles and the users.
func usersXML(users []User) (string, error) {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0"?>
<!-- Generated by journey's chserver; edits are overwritten at the next start. -->
<yandex>
  <profiles>
    <default><max_memory_usage>4000000000</max_memory_usage></default>
    <readonly><readonly>1</readonly></readonly>
    <journey_admin><max_memory_usage>4000000000</max_memory_usage></journey_admin>
    <journey_readwrite><max_memory_usage>4000000000</max_memory_usage><allow_ddl>0</allow_ddl></journey_readwrite>
    <journey_readonly><max_memory_usage>4000000000</max_memory_usage><readonly>1</readonly></journey_readonly>
  </profiles>
  <users>
`)
	defaultPassword := ""
	if len(users) > 0 {
		defaultPassword = randomHex(24)
	}
	user := func(name, password, profile, database string) {
		b.WriteString("    <" + name + ">\n      <password>" + xmlText(password) + "</password>\n")
		b.WriteString("      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>\n")
		b.WriteString("      <profile>" + profile + "</profile>\n      <quota>default</quota>\n")
		if database != "" {
			b.WriteString("      <allow_databases><database>" + xmlText(database) + "</database></allow_databases>\n")
		}
		b.WriteString("    </" + name + ">\n")
	}
	user("default", defaultPassword, "default", "")
	for _, u := range users {
		if !validName(u.Name) || u.Name == "default" {
			return "", fmt.Errorf("chserver: user name %q must be letters, digits and _ (and not default)", u.Name)
		}
		profile := map[Role]string{RoleAdmin: "journey_admin", RoleReadWrite: "journey_readwrite", RoleReadOnly: "journey_readonly"}[u.Role]
		if profile == "" {
			return "", fmt.Errorf("chserver: user %s: role %q is not admin, readwrite or readonly", u.Name, u.Role)
		}
		user(u.Name, u.Password, profile, u.Database)
	}
	b.WriteString(`  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`)
	return b.String(), nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
