package journeyctl

import (
	"errors"
	"fmt"
)

// Exit codes (docs/operations.md).
const (
	ExitOK = 0
	// ExitFailure: the command could not do its work (a dependency, an I/O error).
	ExitFailure = 1
	// ExitUsage: bad flags or arguments.
	ExitUsage = 2
	// ExitVerify: the work ran but a check failed: a dead letter that is
	// still invalid under the current schema, a verification mismatch.
	ExitVerify = 3
	// ExitNotFound: a selected item does not exist (a dead-letter sequence).
	ExitNotFound = 4
)

// ErrUsage marks bad input from the operator; it exits with [ExitUsage].
var ErrUsage = errors.New("usage")

// ErrVerify marks a failed check; it exits with [ExitVerify].
var ErrVerify = errors.New("verification failed")

// ErrNotFound marks a selection that names nothing; it exits with [ExitNotFound].
var ErrNotFound = errors.New("not found")

func usagef(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUsage}, a...)...)
}

// ExitCode maps an error returned by a command to its exit code.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrUsage):
		return ExitUsage
	case errors.Is(err, ErrVerify):
		return ExitVerify
	case errors.Is(err, ErrNotFound):
		return ExitNotFound
	}
	return ExitFailure
}
