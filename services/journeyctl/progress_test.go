package journeyctl_test

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/klantreis/journey/services/journeyctl"
)

// On a terminal the progress is a bar: done/total, a rate and an ETA
// ("[elapsed:remaining]"), read back through a pseudo-terminal.
func TestProgressOnATerminalShowsRateAndETA(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	var mu sync.Mutex
	var got bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			mu.Lock()
			got.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	p := journeyctl.NewProgress(tty, true, time.Second, "replay", "events", 1000)
	for range 10 {
		p.Add(50)
		time.Sleep(150 * time.Millisecond)
	}
	tty.Close()
	ptmx.SetReadDeadline(time.Now().Add(2 * time.Second))
	<-done
	mu.Lock()
	out := got.String()
	mu.Unlock()
	t.Logf("terminal output: %q", lastFrame(out))
	for what, re := range map[string]string{
		"done/total": `\d+/1000`,
		"rate":       `\d+(\.\d+)? events/s`,
		"ETA":        `\[\d+s:\d+s\]`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("no %s (%s) in the terminal output %q", what, re, lastFrame(out))
		}
	}
}

func lastFrame(s string) string {
	if i := strings.LastIndex(strings.TrimRight(s, "\r\n"), "\r"); i >= 0 {
		return s[i:]
	}
	return s
}

// Not on a terminal: a plain line per interval with the same figures.
func TestProgressElsewherePrintsPlainLines(t *testing.T) {
	r, w := io.Pipe()
	var buf bytes.Buffer
	copied := make(chan struct{})
	go func() { io.Copy(&buf, r); close(copied) }()
	p := journeyctl.NewProgress(w, false, 100*time.Millisecond, "replay", "events", 400)
	for range 4 {
		time.Sleep(120 * time.Millisecond)
		p.Add(50)
	}
	p.Finish()
	w.Close()
	<-copied
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	t.Logf("%d lines:\n%s", len(lines), buf.String())
	if len(lines) < 4 {
		t.Fatalf("%d lines, want a line per interval and one at the end", len(lines))
	}
	re := regexp.MustCompile(`^replay: \d+/400 \(\d+%\) \d+ events/s, eta \S+$`)
	for _, l := range lines {
		if !re.MatchString(l) {
			t.Errorf("line %q does not match %s", l, re)
		}
	}
	if !strings.HasPrefix(lines[len(lines)-1], "replay: 200/400 (50%)") {
		t.Errorf("last line %q, want 200/400", lines[len(lines)-1])
	}
}
