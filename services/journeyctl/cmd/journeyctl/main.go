// Command journeyctl is journey's operator tool: status, dead letters,
// replay. Configuration: the services' JOURNEY_* variables (see
// docs/configuration.md), with flags on top; runbooks and exit codes in
// docs/operations.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/kelseyhightower/envconfig"
	"golang.org/x/term"

	"github.com/klantreis/journey/services/journeyctl"
)

// exitCode is a command's exit status; the command printed its error already.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit status %d", int(c)) }

func main() {
	err := realMain(context.Background())
	if c, ok := err.(exitCode); ok {
		os.Exit(int(c))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "journeyctl:", err)
		os.Exit(journeyctl.ExitUsage)
	}
}

// realMain reads the configuration and runs the command; a non-zero exit
// comes back as an exitCode, a bad environment as another error.
func realMain(ctx context.Context) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var cfg journeyctl.Config
	if err := envconfig.Process("JOURNEY", &cfg); err != nil {
		return err
	}
	env := &journeyctl.Env{
		Config: cfg,
		Out:    os.Stdout,
		Err:    os.Stderr,
		TTY:    term.IsTerminal(int(os.Stderr.Fd())),
	}
	if code := journeyctl.Run(ctx, os.Args[1:], env); code != journeyctl.ExitOK {
		return exitCode(code)
	}
	return nil
}
