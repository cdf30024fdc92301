package schemas

import _ "embed"

// OpenAPI is openapi.yaml: the OpenAPI 3.1 description of the query API,
// served by the API at /openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte
