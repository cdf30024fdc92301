// Package api serves journey's read side: the HTTP query API under /v1
// (customers, their explanation and timeline, NPS, lifecycle and funnel
// metrics), the OpenAPI document at /openapi.yaml, and the dashboard at /
// with charts rendered server-side as SVG. It only reads ClickHouse; see
// docs/api.md and docs/dashboards.md.
package api
