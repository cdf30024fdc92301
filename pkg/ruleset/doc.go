// Package ruleset names versions of the lifecycle rules' thresholds and
// holds the one pointer that says which version is live.
//
// A version is a name ("v1" is the base: the thresholds the projector is
// configured with, its usual bucket and consumers, the plain ClickHouse
// tables) and a set of [journey.Rules]. Every other version ("v2", "v3",
// ...) has a projection of its own beside the base's: the key-value buckets
// <bucket>__vN, the consumers <durable>-vN-p<k> and the tables
// customer_state__vN, stage_transitions__vN and satisfaction_responses__vN.
// `journeyctl rederive start` fills one while the live projector goes on.
//
// The live version is the key [LiveKey] of the key-value bucket [Bucket].
// The api, the dashboard and the projector watch it and move together when
// `journeyctl rederive switch` or `rollback` writes it (compare-and-set, so
// two operators cannot interleave). No key means the base is live.
package ruleset
