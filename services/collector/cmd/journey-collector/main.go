// Command journey-collector runs the CloudEvents HTTP collector (see
// docs/collector.md). `journey-collector hash-token` reads a token on stdin
// and prints the line form a tokens file stores.
package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/klantreis/journey/internal/cmdmain"
	"github.com/klantreis/journey/services/collector"
)

func main() { cmdmain.Main("journey-collector", realMain) }

func realMain(ctx context.Context) error {
	if len(os.Args) > 1 && os.Args[1] == "hash-token" {
		return hashToken()
	}
	return cmdmain.Service(ctx, collector.Run)
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
