// Package projection is the projector's core: it applies batches of fact
// events to customers' [journey.State] and turns what changed into writes
// (warehouse rows, derived events, expiry index entries, the stored state),
// through small interfaces it declares. It knows neither NATS nor
// ClickHouse; services/projector plugs those in.
//
// Every write is idempotent and every apply is a no-op for an event the
// state already holds, so the way to survive any failure is to re-run the
// batch: [Projector.Process] returns an error, the caller backs off and calls
// it again (or lets the broker redeliver), and the result is the same as if
// nothing had failed.
package projection
