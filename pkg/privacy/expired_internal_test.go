package privacy

import (
	"context"
	"errors"
	"testing"
	"time"
)

// deadlineOnly is a context whose deadline has its own value while Err
// stays nil: the moment between a connection's deadline firing and ctx
// reporting it.
type deadlineOnly struct {
	context.Context
	at time.Time
}

func (c deadlineOnly) Deadline() (time.Time, bool) { return c.at, true }

func TestExpired(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		want error
	}{
		{"no deadline", context.Background(), nil},
		{"deadline ahead", deadlineOnly{context.Background(), time.Now().Add(time.Hour)}, nil},
		{"deadline passed, not yet reported", deadlineOnly{context.Background(), time.Now().Add(-time.Millisecond)}, context.DeadlineExceeded},
		{"cancelled", cancelled, context.Canceled},
	} {
		if got := expired(tc.ctx); !errors.Is(got, tc.want) || (tc.want == nil) != (got == nil) {
			t.Errorf("%s: expired = %v, want %v", tc.name, got, tc.want)
		}
	}
}
