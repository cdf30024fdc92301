// Package account holds the B2B rules as pure functions: an account's
// lifecycle stage over the facts of all its contacts, its decision-making
// unit (DMU: each contact's current role, the roles engaged lately, the
// coverage gap of an open quote without a decision maker) and its
// satisfaction (account NPS, at risk). It knows no NATS, ClickHouse or HTTP.
//
// # Facts and order independence
//
// An account's [State] keeps facts, never a log: the stage facts (orders,
// offboardings, the first touch) in a [journey.State] folded by the
// customer rules of pkg/journey with the account's own rules version, and
// per contact the latest role, the latest touch, the latest survey answer,
// complaints and quotes. Every merge keeps the earliest or the latest by
// [journey.Mark] (event time, then id), so the state is a function of the
// set of events and not of the order they arrive in, and applying an
// event twice changes nothing.
//
// # Membership and history
//
// A contact is a (customer_id, contact_id) pair; an event without a
// contact_id is the customer's own. A contact belongs to the account named
// by the latest account_id on any of its events ([Placement]). Events
// without an account_id are no account's.
//
// When a contact moves from account A to account B:
//   - history stays where it happened: the orders, offboardings and quotes
//     an event named A for remain A's facts, so A's stage history, its
//     transitions and their cause events are not rewritten, and B's stage
//     does not gain A's orders;
//   - what describes the people follows the contact: from the moving
//     event on (by event time, whatever the arrival order) the contact is
//     listed, counted in coverage, NPS and at-risk only for B. A's record
//     keeps the contact as a former member (with their role and last touch
//     in A), which is how a late event of A from before the move cannot
//     bring them back.
//
// # Time
//
// The inactivity rule, coverage and the coverage gap depend on the current
// time, so they are derived at a given now by [Rulebook.View]; [View.Next]
// says when the view changes by time alone, for a sweep.
//
// # Erasure
//
// [State.Forget] removes a customer's contacts, their answers, complaints
// and quotes (the hook for pkg/erasure). The stage facts hold order ids and
// event ids and times only, no contact data, and stay.
package account
