// Command journey-collector runs the CloudEvents HTTP collector (see
// docs/collector.md). `journey-collector hash-token` reads a token on stdin
// and prints the line form a tokens file stores.
package main

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/kelseyhightower/envconfig"

	"github.com/klantreis/journey/services/collector"
)

func main() {
	if err := realMain(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "journey-collector:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context) error {
	if len(os.Args) > 1 && os.Args[1] == "hash-token" {
		return hashToken()
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	var cfg collector.Config
	if err := envconfig.Process("JOURNEY", &cfg); err != nil {
		return err
	}
	return collector.Run(ctx, cfg, log)
}

func hashToken() error {
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && line == "" {
		return fmt.Errorf("hash-token: read a token on stdin: %w", err)
	}
	tok := strings.TrimSpace(line)
	if len(tok) < collector.MinTokenLen {
		return fmt.Errorf("hash-token: a token needs at least %d characters", collector.MinTokenLen)
	}
	fmt.Printf("%s=<source-prefix>|<source-prefix>\n", collector.HashToken(tok))
	return nil
}
