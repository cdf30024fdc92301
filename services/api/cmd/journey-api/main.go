// Command journey-api serves the query API and the dashboard (see
// docs/api.md and docs/dashboards.md).
package main

import (
	"context"

	"github.com/klantreis/journey/internal/cmdmain"
	"github.com/klantreis/journey/services/api"
)

func main() { cmdmain.Main("journey-api", realMain) }

func realMain(ctx context.Context) error { return cmdmain.Service(ctx, api.Run) }
