// Package killtest kills a child process in the middle of its work, for
// the fault tests that prove a kill -9 loses and doubles nothing.
package killtest

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Midway polls progress every 5 ms until more than at units of work are
// done, then sends SIGKILL to cmd and reaps it. what names the process in
// the log. The test fails when the work finished before the kill (use more
// of it), when it made no progress past at within timeout, or when it was
// finished by the time the kill landed: a kill after the end proves
// nothing.
func Midway(t testing.TB, cmd *exec.Cmd, what string, at uint64, timeout time.Duration, progress func() (n uint64, done bool)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n, done := progress()
		if done {
			t.Fatalf("%s finished before it could be killed; use more events", what)
		}
		if n > at {
			t.Logf("SIGKILL to %s after %d units of work", what, n)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s made no progress to kill at within %s: %d of %d", what, timeout, n, at)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if _, done := progress(); done {
		t.Fatalf("%s was killed after the end of its work: the test proves nothing", what)
	}
}
