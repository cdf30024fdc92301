// Package schemas embeds the published contracts of journey: the JSON
// Schemas of every event payload, the ClickHouse migrations and the OpenAPI
// document. They are files first (for other languages and for review) and
// embedded so that the binaries validate against exactly what is published.
package schemas

import "embed"

// Events holds events/*.json: one JSON Schema (draft 2020-12) per event type
// and version, plus common.v1.json that the touchpoint schemas reference.
//
//go:embed events/*.json
var Events embed.FS

// ClickHouse holds clickhouse/*.sql: the migrations, applied in file-name
// order. They are text/template files rendered per server version.
//
//go:embed clickhouse/*.sql
var ClickHouse embed.FS

// Testdata holds the invalid examples every schema must reject, with the
// message the Go validator must give.
//
//go:embed testdata
var Testdata embed.FS

// BaseURI is the prefix of every schema's $id and of an event's dataschema.
const BaseURI = "https://journey.klantreis.io/schemas/events/"
