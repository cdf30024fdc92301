package privacy

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/warehouse"
)

// table is a ClickHouse table and how to select a batch's rows in it.
type table struct {
	name  string
	where func(customers []string) (string, []any)
}

func byCustomerID(customers []string) (string, []any) {
	return "customer_id IN ?", []any{clickhouse.GroupSet{Value: anys(customers)}}
}

// bySubjectOrHeader selects dead rows, which have no customer column: by
// the last token of their subject (the customer key), by their ce-subject
// header as stored (the headers' JSON, in either letter case), or by the
// subject of a structured-mode body. The last two cover a dead-lettered
// subject/ce-subject mismatch, whose subject names another customer.
func bySubjectOrHeader(customers []string) (string, []any) {
	keys := make([]string, len(customers))
	inHeader := make([]string, len(customers))
	for i, c := range customers {
		keys[i] = stream.CustomerKey(c)
		h, _ := json.Marshal([]string{c}) // as the writer stores nats.Header
		inHeader[i] = string(h)
	}
	// Sets, not a position() per customer: one parameter per needle made
	// binding the statement take 24 s for 1000 customers, and 18.16
	// rejects a lambda over a column in WHERE. visitParam* reads JSON
	// without spaces outside strings: the headers are Go's encoding; a
	// body's `": ` is closed up first.
	where := "(arrayElement(splitByChar('.', subject), -1) IN ? OR visitParamExtractRaw(headers, 'ce-subject') IN ? OR " +
		"visitParamExtractRaw(headers, 'Ce-Subject') IN ? OR visitParamExtractString(replaceAll(raw, '\": ', '\":'), 'subject') IN ?)"
	return where, []any{clickhouse.GroupSet{Value: anys(keys)}, clickhouse.GroupSet{Value: anys(inHeader)},
		clickhouse.GroupSet{Value: anys(inHeader)}, clickhouse.GroupSet{Value: anys(customers)}}
}

// memberPattern captures the customer_id of every member in an account
// view's JSON (pkg/account.View, as the projector encodes it) as the JSON
// string it is there, quotes and escapes included.
const memberPattern = `"customer_id":("(?:[^"\\]|\\.)*")`

// byViewMember selects the account_state rows whose view lists one of the
// customers as a member: the rows written before the projector wrote the
// account again without them (see accountStore). The customers are
// compared as JSON strings, encoded as the projector encodes them.
func byViewMember(customers []string) (string, []any) {
	enc := make([]string, len(customers))
	for i, c := range customers {
		b, _ := json.Marshal(c)
		enc[i] = string(b)
	}
	return "hasAny(extractAll(view, ?), ?)", []any{memberPattern, enc}
}

func anys(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// mutationBatch bounds the customers of one ALTER TABLE … DELETE: the
// condition is sent as query text (max_query_size is 256 KiB by default)
// and each mutation rewrites the parts it touches on 18.16, so many
// customers share one.
const mutationBatch = 500

// tableStore erases a batch's rows of one table with ALTER TABLE … DELETE
// (a mutation, asynchronous on every version) and waits on
// system.mutations until it is done.
type tableStore struct {
	db    *warehouse.DB
	table table
}

func (s tableStore) Name() string { return "table " + s.table.name }

func (s tableStore) Count(ctx context.Context, customers []string) (uint64, error) {
	var total uint64
	for i := 0; i < len(customers); i += mutationBatch {
		where, args := s.table.where(customers[i:min(i+mutationBatch, len(customers))])
		var n uint64
		if err := s.db.Conn.QueryRow(ctx, "SELECT count() FROM `"+s.table.name+"` WHERE "+where, args...).Scan(&n); err != nil {
			return 0, fmt.Errorf("count %s: %w", s.table.name, err)
		}
		total += n
	}
	return total, nil
}

func (s tableStore) Erase(ctx context.Context, customers []string) error {
	for i := 0; i < len(customers); i += mutationBatch {
		where, args := s.table.where(customers[i:min(i+mutationBatch, len(customers))])
		if err := s.db.Conn.Exec(ctx, "ALTER TABLE `"+s.table.name+"` DELETE WHERE "+where, args...); err != nil {
			return fmt.Errorf("delete from %s: %w", s.table.name, err)
		}
	}
	return waitMutations(ctx, s.db, s.table.name)
}

// waitMutations waits until table has no mutation left to do. 18.16's
// system.mutations has no failure column; a mutation that cannot finish
// keeps is_done = 0, and the wait ends with ctx (the erasure resumes here).
func waitMutations(ctx context.Context, db *warehouse.DB, table string) error {
	for {
		var n uint64
		if err := db.Conn.QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = currentDatabase() AND table = ? AND is_done = 0", table).Scan(&n); err != nil {
			return fmt.Errorf("wait for mutations on %s: %w", table, err)
		}
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for mutations on %s: %w", table, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
