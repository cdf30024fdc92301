// Package collector is journey's CloudEvents HTTP front door: product
// systems that cannot speak NATS (web front ends, SaaS webhooks, scripts)
// POST touchpoints to it and it publishes them onto the touchpoint stream.
//
// It follows the CloudEvents HTTP protocol binding 1.0.2 (structured,
// binary and batch modes) and the CloudEvents webhook spec: it answers 202
// only after JetStream has acknowledged every accepted event, and answers
// every refusal with a specific status and a JSON body that names the
// attribute or field and the rule broken. See docs/collector.md.
package collector
