package projector

import (
	"errors"
	"fmt"
	"testing"

	"github.com/klantreis/journey/pkg/projection"
)

// A batch whose writes all fail the same way reports that error once with
// its count, and a conflict among them is still found by errors.Is.
func TestJoinDistinct(t *testing.T) {
	t.Parallel()
	away := errors.New("nats: no response from stream")
	errs := []error{away, away, fmt.Errorf("%w: %q", projection.ErrConflict, "c-1"), away}
	err := joinDistinct(errs)
	if got := err.Error(); got != "nats: no response from stream (3 times)\n"+errs[2].Error() {
		t.Fatalf("got %q", got)
	}
	if !errors.Is(err, projection.ErrConflict) || !errors.Is(err, away) {
		t.Fatal("the joined error no longer wraps the conflict and the broker error")
	}
}
