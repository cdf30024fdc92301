package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/klantreis/journey/internal/procstat"
)

// Where the CPU goes during one measurement: this process (the bench, the
// embedded NATS server and the in-process writer), the ClickHouse server
// and the whole machine (everything else is other people's load).

// cpuSnap is a point-in-time reading of the CPU clocks.
type cpuSnap struct {
	at      time.Time
	self    float64 // CPU-seconds of this process (user + system)
	ch      float64 // CPU-seconds of the ClickHouse server; -1: unknown
	machine float64 // busy CPU-seconds of all cores (not idle, not iowait)
	load1   float64 // 1-minute load average
	alloc   uint64  // bytes this process allocated so far (Go heap)
	gcs     uint32  // garbage collections so far
}

// cpuUse is what one measurement consumed.
type cpuUse struct {
	wall, self, ch, machine float64 // seconds; ch < 0: not measured
	load1                   float64 // at the end of the measurement
	alloc                   uint64  // bytes allocated by this process
	gcs                     uint32  // garbage collections in this process
}

type cpuMeter struct {
	chPid int // 0: ClickHouse server not found (remote?)
	note  string
}

// newCPUMeter finds the local process listening on chAddr's port. A remote
// server, or one this user cannot see, is skipped with a note.
func newCPUMeter(chAddr string) *cpuMeter {
	m := &cpuMeter{}
	host, portS, err := net.SplitHostPort(chAddr)
	if err != nil {
		m.note = "ClickHouse CPU not measured: " + err.Error()
		return m
	}
	if !isLocal(host) {
		m.note = "ClickHouse CPU not measured: " + host + " is not this machine"
		return m
	}
	port, _ := strconv.Atoi(portS)
	pid, err := listenerPid(port)
	if err != nil {
		m.note = "ClickHouse CPU not measured: " + err.Error()
		return m
	}
	m.chPid = pid
	m.note = fmt.Sprintf("ClickHouse server pid %d (%s)", pid, cmdline(pid))
	return m
}

func isLocal(host string) bool {
	ips, err := net.LookupIP(host)
	if err != nil {
		return false
	}
	addrs, _ := net.InterfaceAddrs()
	for _, ip := range ips {
		if ip.IsLoopback() {
			return true
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				return true
			}
		}
	}
	return false
}

// listenerPid returns the pid owning the socket that listens on port.
func listenerPid(port int) (int, error) {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 || fs[3] != "0A" { // 0A: LISTEN
				continue
			}
			i := strings.LastIndexByte(fs[1], ':')
			if p, err := strconv.ParseInt(fs[1][i+1:], 16, 32); err == nil && int(p) == port {
				inodes["socket:["+fs[9]+"]"] = true
			}
		}
		fh.Close()
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("no local socket listens on port %d", port)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		fds, _ := filepath.Glob(p + "/fd/*")
		for _, fd := range fds {
			if l, err := os.Readlink(fd); err == nil && inodes[l] {
				return strconv.Atoi(filepath.Base(p))
			}
		}
	}
	return 0, fmt.Errorf("the process listening on port %d is not visible", port)
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	s := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}

func load1() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	f, _, _ := strings.Cut(string(b), " ")
	v, _ := strconv.ParseFloat(f, 64)
	return v
}

func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

func (m *cpuMeter) snap() cpuSnap {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := cpuSnap{at: time.Now(), self: selfCPU(), ch: -1, load1: load1(), alloc: ms.TotalAlloc, gcs: ms.NumGC}
	if busy, err := procstat.MachineBusy(); err == nil {
		s.machine = busy.Seconds()
	}
	if m.chPid != 0 {
		if u, err := procstat.Read(m.chPid); err == nil {
			s.ch = u.CPU.Seconds()
		}
	}
	return s
}

func (m *cpuMeter) since(a cpuSnap) cpuUse {
	b := m.snap()
	u := cpuUse{wall: b.at.Sub(a.at).Seconds(), self: b.self - a.self, ch: -1, machine: b.machine - a.machine, load1: b.load1,
		alloc: b.alloc - a.alloc, gcs: b.gcs - a.gcs}
	if a.ch >= 0 && b.ch >= 0 {
		u.ch = b.ch - a.ch
	}
	return u
}

// ours is the CPU of the measured system: this process plus ClickHouse.
func (u cpuUse) ours() float64 { return u.self + max(u.ch, 0) }

func (u cpuUse) String() string {
	ch := "n/a"
	if u.ch >= 0 {
		ch = fmt.Sprintf("%.2f", u.ch/u.wall)
	}
	return fmt.Sprintf("cores: bench proc %.2f, clickhouse %s, others %.2f; load1 %.1f; bench proc allocated %.0f MB, %d GCs",
		u.self/u.wall, ch, max(u.machine-u.ours(), 0)/u.wall, u.load1, float64(u.alloc)/1e6, u.gcs)
}
