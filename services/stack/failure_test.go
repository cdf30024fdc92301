package stack_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/klantreis/journey/services/stack"
)

// A service that fails stops the whole stack, which says which one and
// why: here the writer, whose batch size is refused.
func TestStackStopsWhenAServiceFails(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), 100)
	cfg.Writer.Writer.BatchSize = 0
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t0 := time.Now()
	err := stack.Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if !errors.Is(err, stack.ErrStack) || !strings.Contains(err.Error(), "writer") || ctx.Err() != nil {
		t.Fatalf("Run = %v (ctx %v), want a stack error naming the writer before the deadline", err, ctx.Err())
	}
	t.Logf("stack stopped after %s: %v", time.Since(t0).Round(time.Millisecond), err)
}
