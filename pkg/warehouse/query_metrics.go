package warehouse

import (
	"context"
	"fmt"
	"time"
)

// Interval is the bucket of a time series.
type Interval string

// Intervals of the metrics series; weeks start on Monday (toMonday), all in UTC.
const (
	Day   Interval = "day"
	Week  Interval = "week"
	Month Interval = "month"
)

// The allow-lists that map API words to SQL: nothing else reaches the query
// text.
var intervalFunc = map[Interval]string{Day: "toDate", Week: "toMonday", Month: "toStartOfMonth"}

// NPSGroup is the dimension an NPS series is split by ("" = none).
type NPSGroup string

// Dimensions of the NPS series: the stage, source and account recorded on
// the respondent's latest response in the period.
const (
	GroupNone    NPSGroup = ""
	GroupStage   NPSGroup = "stage"
	GroupSource  NPSGroup = "source"
	GroupAccount NPSGroup = "account"
)

var groupColumn = map[NPSGroup]string{GroupNone: "''", GroupStage: "stage", GroupSource: "source", GroupAccount: "account_id"}

// ValidInterval and ValidNPSGroup report whether a value is allowed.
func ValidInterval(i Interval) bool { _, ok := intervalFunc[i]; return ok }
func ValidNPSGroup(g NPSGroup) bool { _, ok := groupColumn[g]; return ok }

// NPSRow holds the respondent counts of one period (and group). Only
// periods with respondents are returned. The score itself is the domain
// rule's (journey.NPSFromCounts); the nps_* views compute the same in SQL.
type NPSRow struct {
	Period                                       time.Time
	Group                                        string
	Promoters, Passives, Detractors, Respondents uint64
}

// No FINAL on satisfaction_responses: a replayed copy of an answer is the
// same respondent with the same category, so it cannot change a count, and
// argMax by (time, stream_seq) picks the copy FINAL would keep. FINAL made
// this query several times slower on 18.16 at 200 k answers.

// NPS returns the NPS series over [from, to): each respondent (customer, or
// customer + contact when a contact is given) counts once per period with
// their latest response in it (by time, then stream sequence), attributed to
// that response's group value. maxRows bounds the result; more rows is an
// error wrapping ErrTooMany.
func (db *DB) NPS(ctx context.Context, from, to time.Time, iv Interval, g NPSGroup, maxRows int) ([]NPSRow, error) {
	return db.nps(ctx, "", from, to, iv, g, maxRows)
}

// nps is NPS over the tables with suffix (see [Variant]).
func (db *DB) nps(ctx context.Context, suffix string, from, to time.Time, iv Interval, g NPSGroup, maxRows int) ([]NPSRow, error) {
	fn, ok1 := intervalFunc[iv]
	col, ok2 := groupColumn[g]
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("%w: nps interval %q group %q", ErrConfig, iv, g)
	}
	q := `SELECT period, grp, p, pa, d, n FROM (
  SELECT period, grp, countIf(cat = 'promoter') AS p, countIf(cat = 'passive') AS pa,
         countIf(cat = 'detractor') AS d, count() AS n
  FROM (
    SELECT ` + fn + `(time) AS period, customer_id, contact_id,
           CAST(argMax(category, (time, stream_seq)) AS String) AS cat,
           CAST(argMax(` + col + `, (time, stream_seq)) AS String) AS grp
    FROM satisfaction_responses` + suffix + `
    WHERE time >= ? AND time < ?
    GROUP BY period, customer_id, contact_id
  )
  GROUP BY period, grp
) ORDER BY period, grp LIMIT ?`
	rows, err := db.Conn.Query(ctx, q, from.UTC(), to.UTC(), maxRows+1)
	if err != nil {
		return nil, fmt.Errorf("warehouse: nps: %w", err)
	}
	defer rows.Close()
	var out []NPSRow
	for rows.Next() {
		var r NPSRow
		if err := rows.Scan(&r.Period, &r.Group, &r.Promoters, &r.Passives, &r.Detractors, &r.Respondents); err != nil {
			return nil, fmt.Errorf("warehouse: nps: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("warehouse: nps: %w", err)
	}
	if len(out) > maxRows {
		return nil, fmt.Errorf("%w: nps: more than %d rows", ErrTooMany, maxRows)
	}
	return out, nil
}

// ErrTooMany: a result is larger than the caller's bound.
var ErrTooMany = fmt.Errorf("warehouse: result too large")

// StageCount is the number of customers in one stage.
type StageCount struct {
	Stage     string
	Customers uint64
}

// StageDistribution returns customers per stage now (customer_state FINAL).
func (db *DB) StageDistribution(ctx context.Context) ([]StageCount, error) {
	return db.stageCounts(ctx, "SELECT CAST(stage AS String) AS s, count() FROM customer_state FINAL GROUP BY s ORDER BY s")
}

// StageDistributionAt returns customers per stage just before t, from the
// valid transitions (the last one of each customer before t).
func (db *DB) StageDistributionAt(ctx context.Context, t time.Time) ([]StageCount, error) {
	return db.stageDistributionAt(ctx, "", t)
}

func (db *DB) stageDistributionAt(ctx context.Context, suffix string, t time.Time) ([]StageCount, error) {
	return db.stageCounts(ctx, `SELECT s, count() FROM (
  SELECT customer_id, CAST(argMax(to_stage, idx) AS String) AS s
  FROM stage_transitions`+suffix+` FINAL WHERE valid = 1 AND at < ? GROUP BY customer_id
) GROUP BY s ORDER BY s`, t.UTC())
}

func (db *DB) stageCounts(ctx context.Context, q string, args ...any) ([]StageCount, error) {
	return queryRows(ctx, db, "stage distribution", func(r rowScanner) (StageCount, error) {
		var s StageCount
		err := r.Scan(&s.Stage, &s.Customers)
		return s, err
	}, q, args...)
}

// StageFlow is the number of transitions from one stage to another.
type StageFlow struct {
	From, To    string
	Transitions uint64
}

// StageFlows counts the valid transitions with a time in [from, to).
func (db *DB) StageFlows(ctx context.Context, from, to time.Time) ([]StageFlow, error) {
	return db.stageFlows(ctx, "", from, to)
}

func (db *DB) stageFlows(ctx context.Context, suffix string, from, to time.Time) ([]StageFlow, error) {
	return queryRows(ctx, db, "stage flows", func(r rowScanner) (StageFlow, error) {
		var s StageFlow
		err := r.Scan(&s.From, &s.To, &s.Transitions)
		return s, err
	}, `SELECT CAST(from_stage AS String) AS f, CAST(to_stage AS String) AS t, count()
FROM stage_transitions`+suffix+` FINAL WHERE valid = 1 AND at >= ? AND at < ?
GROUP BY f, t ORDER BY f, t`, from.UTC(), to.UTC())
}

// FunnelStep is one of the three processes: customers who reached its first
// milestone (in the period asked for), how many of them reached the second,
// and the exact median seconds between the two over those who did (nil when
// none did; the mean of the two middle values for an even count).
type FunnelStep struct {
	Process       string
	Entered       uint64
	Converted     uint64
	MedianSeconds *float64
}

// Funnel processes, in order.
const (
	ProcessMarketToSales = "market_to_sales"
	ProcessSalesToOrder  = "sales_to_order"
	ProcessOrderToLoyal  = "order_to_loyal"
)

// Funnel returns the three processes for customers whose first milestone of
// each process lies in [from, to).
func (db *DB) Funnel(ctx context.Context, from, to time.Time) ([]FunnelStep, error) {
	return db.funnel(ctx, "", from, to)
}

func (db *DB) funnel(ctx context.Context, suffix string, from, to time.Time) ([]FunnelStep, error) {
	steps := []struct{ name, a, b string }{
		{ProcessMarketToSales, "first_visit_at", "first_quote_at"},
		{ProcessSalesToOrder, "first_quote_at", "first_order_at"},
		{ProcessOrderToLoyal, "first_order_at", "first_loyal_at"},
	}
	out := make([]FunnelStep, 0, len(steps))
	for _, s := range steps {
		// Column names come from the fixed table above, never from input.
		q := `SELECT entered, converted,
  if(length(d) = 0, NULL, (d[intDiv(length(d) + 1, 2)] + d[intDiv(length(d) + 2, 2)]) / 2)
FROM (
  SELECT count() AS entered, countIf(` + s.b + ` IS NOT NULL) AS converted,
    arraySort(groupArrayIf(toInt64(toUnixTimestamp(assumeNotNull(` + s.b + `))) - toInt64(toUnixTimestamp(assumeNotNull(` + s.a + `))), ` + s.b + ` IS NOT NULL)) AS d
  FROM customer_state` + suffix + ` FINAL
  WHERE ` + s.a + ` IS NOT NULL AND ` + s.a + ` >= ? AND ` + s.a + ` < ?
)`
		var st FunnelStep
		st.Process = s.name
		if err := db.Conn.QueryRow(ctx, q, from.UTC(), to.UTC()).Scan(&st.Entered, &st.Converted, &st.MedianSeconds); err != nil {
			return nil, fmt.Errorf("warehouse: funnel %s: %w", s.name, err)
		}
		out = append(out, st)
	}
	return out, nil
}
