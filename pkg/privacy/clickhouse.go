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

// Batches of customers share one ALTER TABLE … DELETE, because each
// mutation rewrites the parts it touches on 18.16. A batch is bounded by
// count and by the bytes of its ids: the condition is sent as query text
// (max_query_size is 256 KiB by default), and the dead rows' condition
// holds each id four times, with quotes and a JSON form.
const (
	mutationBatch      = 2000
	mutationBatchBytes = 16 << 10
)

// batches splits customers into the batches of one statement each.
func batches(customers []string) [][]string {
	var out [][]string
	start, size := 0, 0
	for i, c := range customers {
		if i > start && (i-start == mutationBatch || size+len(c) > mutationBatchBytes) {
			out = append(out, customers[start:i])
			start, size = i, 0
		}
		size += len(c)
	}
	if start < len(customers) {
		out = append(out, customers[start:])
	}
	return out
}

// tableStore erases a batch's rows of one table with ALTER TABLE … DELETE
// (a mutation, asynchronous on every version) and waits on
// system.mutations until it is done, one statement at a time: 18.16 lost
// most of twenty mutations sent back to back (BenchmarkEraseTables, 10 000
// customers: 70 000 of 100 000 rows left with every mutation marked done;
// the parts jumped to the last mutation's version having applied only
// some of them).
type tableStore struct {
	db    *warehouse.DB
	table table
}

func (s tableStore) Name() string { return "table " + s.table.name }

func (s tableStore) Count(ctx context.Context, customers []string) (uint64, error) {
	var total uint64
	for _, batch := range batches(customers) {
		where, args := s.table.where(batch)
		var n uint64
		if err := s.db.Conn.QueryRow(ctx, "SELECT count() FROM `"+s.table.name+"` WHERE "+where, args...).Scan(&n); err != nil {
			return 0, fmt.Errorf("count %s: %w", s.table.name, err)
		}
		total += n
	}
	return total, nil
}

func (s tableStore) Erase(ctx context.Context, customers []string) error {
	replicas, err := s.db.Replicas(ctx)
	if err != nil {
		return fmt.Errorf("delete from %s: %w", s.table.name, err)
	}
	defer func() {
		for _, r := range replicas {
			r.Close()
		}
	}()
	for _, batch := range batches(customers) {
		where, args := s.table.where(batch)
		if err := s.db.Conn.Exec(ctx, "ALTER TABLE `"+s.table.name+"` DELETE WHERE "+where, args...); err != nil {
			return fmt.Errorf("delete from %s: %w", s.table.name, err)
		}
		if replicas == nil {
			err = waitMutations(ctx, s.db, s.table.name)
		} else {
			err = waitReplicas(ctx, replicas, s.table.name, where, args)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// waitReplicas waits until each replica has either finished the table's
// mutations or holds no row of the batch. The second is needed on 18.16,
// which never mutates a replicated table's most recent insert-quorum part
// (quorum/last_part in ZooKeeper): the mutation stays undone until the next
// quorum insert into that table makes another part the most recent one.
// When that part holds none of the batch's rows, the batch is erased on
// that replica without it; when it holds some, the wait lasts until the
// next insert (the writer's next batch, on a live system) or until ctx
// ends, and the erasure resumes here. Newer servers mutate that part.
func waitReplicas(ctx context.Context, replicas []*warehouse.DB, table, where string, args []any) error {
	var left uint64
	var on string
	timedOut := func(err error) error {
		return fmt.Errorf("wait for the erasure on %s: %d rows of the batch left over the replicas (last at %s); "+
			"ClickHouse 18.16 mutates a table's most recent insert-quorum part only after the next quorum insert into it: %w",
			table, left, on, err)
	}
	for {
		var now uint64
		var at string
		for _, r := range replicas {
			var pending, rows uint64
			err := r.Conn.QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = currentDatabase() AND table = ? AND is_done = 0", table).Scan(&pending)
			if err == nil && pending > 0 {
				err = r.Conn.QueryRow(ctx, "SELECT count() FROM `"+table+"` WHERE "+where, args...).Scan(&rows)
			}
			if err != nil && on != "" {
				if cerr := expired(ctx); cerr != nil {
					return timedOut(cerr) // the time ran out inside a check
				}
			}
			if err != nil {
				return fmt.Errorf("wait for the erasure on %s at replica %s: %w", table, r.Addr(), err)
			}
			if rows > 0 {
				now, at = now+rows, r.Addr()
			}
		}
		if now == 0 {
			return nil
		}
		left, on = now, at
		select {
		case <-ctx.Done():
			return timedOut(ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitMutations waits until table has no mutation left to do. 18.16's
// system.mutations has no failure column; a mutation that cannot finish
// keeps is_done = 0, and the wait ends with ctx (the erasure resumes here).
func waitMutations(ctx context.Context, db *warehouse.DB, table string) error {
	for {
		var n uint64
		if err := db.Conn.QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = currentDatabase() AND table = ? AND is_done = 0", table).Scan(&n); err != nil {
			if cerr := expired(ctx); cerr != nil {
				err = cerr // the time ran out inside the check
			}
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

// expired is ctx's error once it ended or its deadline passed. The
// ClickHouse driver sets the connection's deadline from ctx's, so a query
// cut by it fails with an i/o timeout a moment before ctx itself reports
// the deadline: seen as an unexplained read error where the erasure
// should say its time ran out (and resume), in CI on 2026-12-08.
func expired(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}
