// Package journey holds the sales textbook's rules as pure functions: a
// customer's lifecycle stage (prospect, new_customer, loyal_customer,
// ex_customer) with the explanation of every transition, their satisfaction
// (NPS category, open complaints, at risk) and the aggregate NPS of a set of
// survey responses. It knows no NATS, ClickHouse or HTTP.
//
// A customer's [State] keeps the facts (orders by order_id, complaints by
// complaint_id, the latest survey answer, first visit and quote, offboard
// decisions) and derives the stage history from them by a fold over the facts
// ordered by (time, stream sequence, id). Applying an event only adds facts,
// and every fact merge is idempotent and commutative (earliest placement of an
// order, earliest cancellation, latest survey, ...), so the state is a
// function of the set of events and not of the order they arrived in. An
// event newer than everything folded so far extends the fold (the common
// case, O(1) amortised); a late event re-folds that one customer from the
// facts the state keeps, without reading the stream again.
//
// The inactivity rule depends on the current time: the history ends with an
// ex_customer transition at the expiry (last counted order + InactiveAfter)
// once now has reached it. That transition is the "tail" of the history and
// is recomputed on every apply, so it is never inconsistent with later facts.
package journey
