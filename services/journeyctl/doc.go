// Package journeyctl is the operators' command: status, dead-letter
// redrive and purge, replay of the touchpoint stream, and erasure of
// customers (docs/privacy.md), each audited (docs/operations.md).
//
// The root command is [CLI] in cli.go: one field per command, each command
// a type in its own file, so a new command is a field and a file. Every
// command gets the [Env] (configuration, connections, output, actor) by
// kong's binding and returns an error; [Run] maps errors to the exit codes
// documented in docs/operations.md.
package journeyctl
