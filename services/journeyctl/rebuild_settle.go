package journeyctl

import (
	"context"
	"fmt"
	"time"

	"github.com/klantreis/journey/pkg/retry"
	"github.com/klantreis/journey/pkg/warehouse"
)

// rebuildQueryPrefix, then the database and a dash, starts the query id
// of every batch insert into the shadow, so that a later run can tell
// whether one of an earlier, killed run's inserts still executes. The
// database is in it because 18.16's system.processes does not say which
// database a query runs in. Only single-statement inserts are tagged: a
// server may still list a statement that has just answered, so a second
// statement under the same id can be refused as "already running" (code
// 216). The server-side copies (a month of --from-table, the swap's
// catch-up) issue several statements and are not tagged.
const rebuildQueryPrefix = "journeyctl-rebuild-"

// settleLimit bounds the wait for such a statement.
const settleLimit = 2 * time.Minute

// writing tags ctx for one insert statement of the rebuild.
func (r *rebuildRun) writing(ctx context.Context) context.Context {
	return warehouse.WithQueryID(ctx, warehouse.NewQueryID(r.queryPrefix()))
}

func (r *rebuildRun) queryPrefix() string { return rebuildQueryPrefix + r.db.Database() + "-" }

// settleEarlier waits until no writing statement of an earlier run still
// executes on the server. A journeyctl killed mid-INSERT leaves its
// statement running: the rows it stores appear after the kill, and a
// resumed run that judged the batch before they did would insert them a
// second time. Once no such statement runs, the shadow's identity index
// is the whole truth about what was inserted.
func (r *rebuildRun) settleEarlier(ctx context.Context) error {
	deadline := time.Now().Add(settleLimit)
	b := retry.New(50*time.Millisecond, time.Second)
	for logged := false; ; {
		n, err := r.db.RunningWithPrefix(ctx, r.queryPrefix())
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("journeyctl: %d statements of an earlier rebuild run (query id %s…) still execute on the server after %s; end them with KILL QUERY or wait, then run again",
				n, r.queryPrefix(), settleLimit)
		}
		if !logged {
			r.env.Log.Info("waiting for the statements of an earlier, interrupted rebuild run to end on the server", "running", n)
			logged = true
		}
		if !b.Wait(ctx) {
			return ctx.Err()
		}
	}
}
