// Package procstat reads what Linux's /proc says about a process and the
// machine: CPU time and resident memory of a pid, the busy time of all
// cores, a pid found by its command line. The benchmarks use it to say
// where the CPU went; every reader returns an error wrapping ErrProc where
// there is no /proc.
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// It is 100 on every Linux architecture Go supports (the kernel exports
// it as a constant for user space; sysconf would need cgo).
const clockTick = 100

// ErrProc marks a process whose figures cannot be read (gone, or no /proc).
var ErrProc = errors.New("procstat: /proc")

// Usage is one reading of a process's resource use.
type Usage struct {
	CPU time.Duration // user + system since the process started
	RSS int64         // resident bytes
}

// Read reads pid's CPU time and resident set from /proc.
func Read(pid int) (Usage, error) {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return Usage{}, fmt.Errorf("%w: %w", ErrProc, err)
	}
	cpu, err := parseStatCPU(stat)
	if err != nil {
		return Usage{}, err
	}
	status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return Usage{}, fmt.Errorf("%w: %w", ErrProc, err)
	}
	return Usage{CPU: cpu, RSS: parseStatusRSS(status)}, nil
}

// parseStatCPU returns utime+stime from a /proc/<pid>/stat line. The
// command name (field 2) may hold spaces and parentheses, so fields are
// counted from the last ')'.
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("%w: unparsable stat", ErrProc)
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("%w: short stat", ErrProc)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%w: unparsable cpu times", ErrProc)
	}
	return time.Duration(u+s) * time.Second / clockTick, nil
}

// parseStatusRSS returns VmRSS in bytes from /proc/<pid>/status (0 if absent).
func parseStatusRSS(status []byte) int64 {
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// FindPID returns the pid of a process whose command line contains every
// one of parts, or 0. It finds the ClickHouse server that internal/chserver
// started (by its config file path), whose pid chserver does not expose.
func FindPID(parts ...string) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		ok := true
		for _, p := range parts {
			if !bytes.Contains(cmd, []byte(p)) {
				ok = false
				break
			}
		}
		if ok {
			return pid
		}
	}
	return 0
}

// MachineBusy is the CPU time all processes of the machine have spent
// (user, nice, system, irq, softirq, steal) since boot, from /proc/stat.
func MachineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrProc, err)
	}
	return parseMachineBusy(b)
}

func parseMachineBusy(stat []byte) (time.Duration, error) {
	line, _, _ := strings.Cut(string(stat), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("%w: unparsable /proc/stat", ErrProc)
	}
	var busy int64
	// user nice system idle iowait irq softirq steal: all but idle and iowait.
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: unparsable /proc/stat", ErrProc)
		}
		busy += v
	}
	return time.Duration(busy) * time.Second / clockTick, nil
}
