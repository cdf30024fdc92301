// Command journey-writer stores the touchpoint stream in ClickHouse.
// Configuration: JOURNEY_* variables, see docs/configuration.md.
package main

import (
	"context"
	"os"
	"runtime/debug"

	"github.com/klantreis/journey/internal/cmdmain"
	"github.com/klantreis/journey/services/writer"
)

func main() { cmdmain.Main("journey-writer", realMain) }

// gcPercent is the writer's garbage-collection target unless GOGC is set.
// Every event allocates its NATS message and headers, the decoded event,
// its row and column buffers; in writer-bench (writer and embedded NATS
// server in one process, ~7 KB per event) the collector was 12 % of the
// drain's CPU plus assists, and 200 instead of Go's 100 cut the CPU per
// event by 9-32 % (mean 20 %) in 4 alternating pairs (docs/perf-writer.md).
// The cost: the heap may grow to ~3x instead of ~2x the two batches held.
const gcPercent = 200

func realMain(ctx context.Context) error {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
	return cmdmain.Service(ctx, writer.Run)
}
