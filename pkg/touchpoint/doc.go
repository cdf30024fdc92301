// Package touchpoint owns the event contract of journey: the CloudEvents
// types that product systems emit (visit, quote, order, complaint, survey),
// the ops event offboarded, and the derived events the projector emits.
//
// It gives typed payloads and constructors, validation whose errors name the
// field and the rule broken, and encoding and decoding in the CloudEvents
// structured (JSON) and binary (ce- headers) modes. It knows nothing of NATS,
// ClickHouse or HTTP: transports map their headers onto [Header].
//
// Decoding is on the hot path of every consumer, so payloads are parsed with
// a pooled fastjson parser straight into [Payload] instead of through
// reflection (see BenchmarkDecode).
package touchpoint
