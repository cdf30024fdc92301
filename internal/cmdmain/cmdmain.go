// Package cmdmain is what every service command's main does the same way:
// a context that SIGINT and SIGTERM cancel, the configuration from the
// JOURNEY_* environment, a JSON logger on stderr, and exit status 1 with
// the error on stderr. Each command keeps its realMain(ctx) error.
package cmdmain

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/kelseyhightower/envconfig"
)

// Main runs realMain until it returns or a signal cancels its context,
// and exits 1 with "name: error" when it fails.
func Main(name string, realMain func(ctx context.Context) error) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := realMain(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

// Service reads a C from the JOURNEY_* environment (an error names the
// variable that is wrong) and runs run with it and a JSON logger on
// stderr.
func Service[C any](ctx context.Context, run func(context.Context, C, *slog.Logger) error) error {
	var cfg C
	if err := envconfig.Process("JOURNEY", &cfg); err != nil {
		return err
	}
	return run(ctx, cfg, slog.New(slog.NewJSONHandler(os.Stderr, nil)))
}
