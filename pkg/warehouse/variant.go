package warehouse

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Variant is the projection tables of one rules version (pkg/ruleset):
// customer_state, stage_transitions and satisfaction_responses with a
// suffix ("__v2"), beside the live ones, with the same columns and
// engines. The empty suffix is the plain tables. A re-derive fills a
// variant while the projector keeps writing the plain tables; the api
// reads whichever the live version names.
type Variant struct {
	db     *DB
	suffix string
}

// projectionTables are the tables a variant has its own copy of.
func projectionTables() []string {
	return []string{"customer_state", "stage_transitions", "satisfaction_responses"}
}

// Variant returns the tables with suffix: "" or "__" followed by letters,
// digits and _ (an error wrapping ErrConfig otherwise).
func (db *DB) Variant(suffix string) (*Variant, error) {
	if suffix != "" && (len(suffix) < 3 || !strings.HasPrefix(suffix, "__") || !validIdent(suffix)) {
		return nil, fmt.Errorf("%w: table suffix %q: want \"\" or __ followed by letters, digits and _", ErrConfig, suffix)
	}
	return &Variant{db: db, suffix: suffix}, nil
}

// Suffix is the variant's table suffix.
func (v *Variant) Suffix() string { return v.suffix }

// Table is the variant's name of a projection table.
func (v *Variant) Table(base string) string { return base + v.suffix }

// Create makes the variant's tables as copies of the plain tables'
// structure and engine (CREATE TABLE ... AS, idempotent). The plain tables
// must exist (Migrate). Columns a later migration adds to the plain tables
// are not added to a variant made before it: re-derive again after such a
// migration. On a cluster (Config.Cluster) it returns an error: a copied
// Replicated engine would share the plain table's ZooKeeper path.
func (v *Variant) Create(ctx context.Context) error {
	if v.suffix == "" {
		return nil
	}
	if v.db.cfg.Cluster != "" {
		return fmt.Errorf("%w: shadow projection tables are not supported on a cluster (JOURNEY_CLICKHOUSE_CLUSTER) yet", ErrConfig)
	}
	for _, t := range projectionTables() {
		if err := v.db.Conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+v.Table(t)+" AS "+t); err != nil {
			return fmt.Errorf("warehouse: create %s: %w", v.Table(t), err)
		}
	}
	return nil
}

// WriteProjection is [DB.WriteProjection] into the variant's tables.
func (v *Variant) WriteProjection(ctx context.Context, states []CustomerStateRow, transitions []TransitionRow, responses []ResponseRow) error {
	return v.db.writeProjection(ctx, v.suffix, states, transitions, responses)
}

// Customer is [DB.Customer] from the variant's tables.
func (v *Variant) Customer(ctx context.Context, id string) (CustomerState, error) {
	return v.db.customer(ctx, v.suffix, id)
}

// Customers is [DB.Customers] from the variant's tables.
func (v *Variant) Customers(ctx context.Context, f CustomerFilter) ([]CustomerState, error) {
	return v.db.customers(ctx, v.suffix, f)
}

// Transitions is [DB.Transitions] from the variant's tables.
func (v *Variant) Transitions(ctx context.Context, id string) ([]Transition, error) {
	return v.db.transitions(ctx, v.suffix, id)
}

// StageDistribution is [DB.StageDistribution] from the variant's tables.
func (v *Variant) StageDistribution(ctx context.Context) ([]StageCount, error) {
	return v.db.stageCounts(ctx, "SELECT CAST(stage AS String) AS s, count() FROM "+v.Table("customer_state")+" FINAL GROUP BY s ORDER BY s")
}

// NPS is [DB.NPS] from the variant's satisfaction_responses (whose stage
// column is the version's).
func (v *Variant) NPS(ctx context.Context, from, to time.Time, iv Interval, g NPSGroup, maxRows int) ([]NPSRow, error) {
	return v.db.nps(ctx, v.suffix, from, to, iv, g, maxRows)
}

// StageDistributionAt is [DB.StageDistributionAt] from the variant's tables.
func (v *Variant) StageDistributionAt(ctx context.Context, t time.Time) ([]StageCount, error) {
	return v.db.stageDistributionAt(ctx, v.suffix, t)
}

// StageFlows is [DB.StageFlows] from the variant's tables.
func (v *Variant) StageFlows(ctx context.Context, from, to time.Time) ([]StageFlow, error) {
	return v.db.stageFlows(ctx, v.suffix, from, to)
}

// Funnel is [DB.Funnel] from the variant's tables.
func (v *Variant) Funnel(ctx context.Context, from, to time.Time) ([]FunnelStep, error) {
	return v.db.funnel(ctx, v.suffix, from, to)
}

// Stages calls fn with every customer's current stage, in customer id
// order (the newest version's row of each), streaming.
func (v *Variant) Stages(ctx context.Context, fn func(customerID, stage string) error) error {
	rows, err := v.db.Conn.Query(ctx, "SELECT customer_id, argMax(CAST(stage AS String), version) FROM "+v.Table("customer_state")+
		" GROUP BY customer_id ORDER BY customer_id")
	if err != nil {
		return fmt.Errorf("warehouse: stages of %s: %w", v.Table("customer_state"), err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, stage string
		if err := rows.Scan(&id, &stage); err != nil {
			return fmt.Errorf("warehouse: stages of %s: %w", v.Table("customer_state"), err)
		}
		if err := fn(id, stage); err != nil {
			return err
		}
	}
	return rows.Err()
}

// renameTable points "INSERT INTO table (…)" at table+suffix.
func renameTable(query, table, suffix string) string {
	if suffix == "" {
		return query
	}
	return strings.Replace(query, "INSERT INTO "+table+" ", "INSERT INTO "+table+suffix+" ", 1)
}
