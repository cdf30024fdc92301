package journeyctl_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/klantreis/journey/services/journeyctl"
)

// Exit codes as documented: usage errors are 2, --help is 0.
func TestExitCodes(t *testing.T) {
	t.Parallel() // its own NATS server and database
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"--help"}, journeyctl.ExitOK},
		{[]string{"no-such-command"}, journeyctl.ExitUsage},
		{[]string{"deadletters", "purge", "1"}, journeyctl.ExitUsage}, // --reason is required
		{[]string{"status", "--sample", "soon"}, journeyctl.ExitUsage},
	} {
		var out, errOut bytes.Buffer
		got := journeyctl.Run(context.Background(), tc.args, &journeyctl.Env{Out: &out, Err: &errOut})
		if got != tc.want {
			t.Errorf("journeyctl %v: exit %d, want %d\nstdout: %s\nstderr: %s", tc.args, got, tc.want, out.String(), errOut.String())
		}
	}
}
