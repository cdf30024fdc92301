// Command journey-projector derives each customer's lifecycle stage and
// satisfaction from the touchpoint stream.
// Configuration: JOURNEY_* variables, see docs/configuration.md.
package main

import (
	"context"

	"github.com/klantreis/journey/internal/cmdmain"
	"github.com/klantreis/journey/services/projector"
)

func main() { cmdmain.Main("journey-projector", realMain) }

func realMain(ctx context.Context) error { return cmdmain.Service(ctx, projector.Run) }
