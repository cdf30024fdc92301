package chserver_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/klantreis/journey/internal/chserver"
)

// niceOf reads the niceness of one thread from its /proc stat line.
func niceOf(t *testing.T, stat string) int {
	t.Helper()
	raw, err := os.ReadFile(stat)
	if err != nil {
		t.Fatal(err)
	}
	// "pid (comm) state ppid …": comm may hold spaces; fields count from
	// after its closing parenthesis, where the state is field 3.
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	n, err := strconv.Atoi(fields[19-3])
	if err != nil {
		t.Fatalf("%s: %v", stat, err)
	}
	return n
}

func TestNiceReachesEveryThread(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	if _, err := chserver.Find(""); errors.Is(err, chserver.ErrNotInstalled) {
		if os.Getenv("CI") != "" {
			t.Fatal("clickhouse-server is not installed; the test command installs it in CI")
		}
		t.Skip("clickhouse-server is not installed (and CI is unset): nothing to start")
	}
	ctx := context.Background()
	if _, err := chserver.Start(ctx, chserver.Options{Dir: t.TempDir(), Nice: 20}); err == nil {
		t.Fatal("Nice 20 was accepted")
	}
	s, err := chserver.Start(ctx, chserver.Options{Dir: t.TempDir(), Nice: 7})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	tasks, err := filepath.Glob(filepath.Join("/proc", strconv.Itoa(s.Pid()), "task", "*", "stat"))
	if err != nil || len(tasks) < 2 {
		t.Fatalf("threads of the server: %v, %v", tasks, err)
	}
	for _, st := range tasks {
		if n := niceOf(t, st); n != 7 {
			t.Fatalf("%s runs at nice %d, want 7", st, n)
		}
	}
	t.Logf("%d threads at nice 7", len(tasks))
}
