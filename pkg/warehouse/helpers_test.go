package warehouse_test

import (
	"time"

	"github.com/klantreis/journey/pkg/warehouse"
)

// customerRow is a customer_state row with the columns every state test
// fills: the customer seen, last touched and in stage since at, under
// rules "r1". Tests set the columns they are about on the copy.
func customerRow(id string, version uint64, stage string, at time.Time) warehouse.CustomerStateRow {
	return warehouse.CustomerStateRow{CustomerID: id, Version: version, UpdatedAt: at, Stage: stage, StageSince: at,
		FirstSeen: at, LastTouch: at, RulesVersion: "r1"}
}
