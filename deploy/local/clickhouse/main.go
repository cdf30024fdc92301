// Command clickhouse runs one project-local clickhouse-server for `make
// test` (deploy/local/test.sh): generated config, free ports, data in -dir.
// It writes the native address to -addr-file once the server accepts
// connections, and stops the server cleanly on SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/klantreis/journey/internal/chserver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := realMain(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "clickhouse:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context) error {
	dir := flag.String("dir", "", "data, config and logs (required)")
	addrFile := flag.String("addr-file", "", "write host:port here when ready (required)")
	timeout := flag.Duration("start-timeout", 120*time.Second, "how long to wait for the server to listen")
	flag.Parse()
	if *dir == "" || *addrFile == "" {
		return fmt.Errorf("-dir and -addr-file are required")
	}
	srv, err := chserver.Start(ctx, chserver.Options{Dir: *dir, StartTimeout: *timeout})
	if err != nil {
		return err
	}
	tmp := *addrFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(srv.Addr()+"\n"), 0o644); err != nil {
		srv.Stop()
		return err
	}
	if err := os.Rename(tmp, *addrFile); err != nil {
		srv.Stop()
		return err
	}
	<-ctx.Done()
	return srv.Stop()
}
