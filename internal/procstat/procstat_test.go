package procstat

import (
	"os"
	"runtime"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// A command name with a space and a ')' in it; utime 250, stime 50
	// ticks = 3s.
	stat := "1234 (a) b) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 8 0 100 1000000 500 18446744073709551615"
	got, err := parseStatCPU([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if got != 3*time.Second {
		t.Errorf("cpu = %s, want 3s", got)
	}
	if _, err := parseStatCPU([]byte("garbage")); err == nil {
		t.Error("no error for an unparsable stat")
	}
}

func TestParseStatusRSS(t *testing.T) {
	status := "Name:\tx\nVmPeak:\t  9999 kB\nVmRSS:\t  2048 kB\nThreads:\t4\n"
	if got := parseStatusRSS([]byte(status)); got != 2048*1024 {
		t.Errorf("rss = %d, want %d", got, 2048*1024)
	}
}

func TestReadThisProcess(t *testing.T) {
	u0, err := Read(os.Getpid())
	if err != nil {
		// /proc is Linux's; the bench reads it there, so there it must work.
		if runtime.GOOS == "linux" {
			t.Fatalf("reading /proc on Linux: %v", err)
		}
		t.Skipf("no /proc on %s: %v", runtime.GOOS, err)
	}
	// Burn CPU until the reading moves by at least one tick.
	deadline := time.Now().Add(10 * time.Second)
	var u1 Usage
	x := 0
	for time.Now().Before(deadline) {
		for i := range 1_000_000 {
			x += i
		}
		if u1, err = Read(os.Getpid()); err != nil {
			t.Fatal(err)
		}
		if u1.CPU > u0.CPU {
			break
		}
	}
	if u1.CPU <= u0.CPU {
		t.Errorf("cpu did not grow: %s -> %s (%d)", u0.CPU, u1.CPU, x)
	}
	if u1.RSS < 1<<20 {
		t.Errorf("rss = %d bytes, implausibly small", u1.RSS)
	}
	if _, err := Read(1 << 30); err == nil {
		t.Error("no error for a process that does not exist")
	}
}

func TestParseMachineBusy(t *testing.T) {
	stat := "cpu  100 20 30 5000 40 5 6 7 0 0\ncpu0 50 10 15 2500 20 2 3 3 0 0\n"
	got, err := parseMachineBusy([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	// 100+20+30+5+6+7 = 168 ticks, without idle (5000) and iowait (40).
	if got != 1680*time.Millisecond {
		t.Errorf("busy = %s, want 1.68s", got)
	}
	if _, err := parseMachineBusy([]byte("intr 1 2 3")); err == nil {
		t.Error("no error for a stat without the cpu line")
	}
}
