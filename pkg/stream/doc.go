// Package stream owns journey's JetStream topology and its wire format: the
// streams and their subjects, how a touchpoint becomes a NATS message
// (the CloudEvents NATS binding in binary mode, with a deduplication id) and
// back, and the dead-letter stream.
//
// Subject grammar (see docs/subjects.md):
//
//	touchpoint.<kind>.<customer-key>          published by producers
//	touchpoint.<partition>.<kind>.<customer-key>   stored (stream subject transform)
//	customer.<derived-kind>.<customer-key>     derived events
//	deadletter.<consumer>                      events a consumer gave up on
//
// The stream transform computes partition = partition(N, customer-key), so
// all of a customer's events share a partition and consumers can be split N
// ways by subject filter alone, keeping per-customer order.
package stream
