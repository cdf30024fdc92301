// Package warehouse owns journey's ClickHouse: connecting, detecting what
// the server supports, applying the migrations in schemas/clickhouse, and
// classifying errors into transient (retry) and permanent (dead-letter).
// Writers and readers of the tables live in this package too, one file per
// table family; it knows nothing of NATS.
//
// It supports ClickHouse 18.16 (Debian 12's package) and current releases.
// Where a newer server offers something better (DateTime64(3),
// LowCardinality), [Features] says so and the migrations use it.
package warehouse
