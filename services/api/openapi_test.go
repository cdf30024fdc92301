package api_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/klantreis/journey/pkg/ops"
	"github.com/klantreis/journey/schemas"
	"github.com/klantreis/journey/services/api"
)

type openAPIDoc struct {
	OpenAPI string                            `yaml:"openapi"`
	Paths   map[string]map[string]interface{} `yaml:"paths"`
}

var httpMethods = map[string]bool{"get": true, "put": true, "post": true, "delete": true, "patch": true, "head": true, "options": true, "trace": true}

// The document and the handler must agree both ways: every documented
// path and method is served (not the catch-all 404 or a 405), and every
// route the server has is documented.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc openAPIDoc
	if err := yaml.Unmarshal(schemas.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths {
		for m := range item {
			if httpMethods[m] {
				documented[strings.ToUpper(m)+" "+path] = true
			}
		}
	}
	// No store: routes answer 503 or 200, never the mux's 404/405, which is
	// all this test needs; it runs without ClickHouse.
	srv, err := api.NewServer(api.Settings{}, ops.NewHealth(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	routed := map[string]bool{}
	for _, r := range srv.Routes() {
		routed[r.Method+" "+r.Path] = true
	}
	var missing, undocumented []string
	for k := range documented {
		if !routed[k] {
			missing = append(missing, k)
		}
	}
	for k := range routed {
		if !documented[k] {
			undocumented = append(undocumented, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(undocumented)
	if len(missing) > 0 {
		t.Errorf("documented but not routed: %v", missing)
	}
	if len(undocumented) > 0 {
		t.Errorf("routed but not documented: %v", undocumented)
	}
	// And the handler really serves each documented operation.
	h := srv.Handler()
	param := regexp.MustCompile(`\{[^}]+\}`)
	for k := range documented {
		method, path, _ := strings.Cut(k, " ")
		target := param.ReplaceAllString(path, "style.css")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
		if rec.Code == http.StatusMethodNotAllowed || strings.Contains(rec.Body.String(), "/problems/no-route") {
			t.Errorf("%s %s: not served (%d %s)", method, target, rec.Code, rec.Body.String())
		}
	}
	// A path nobody documented is a problem+json 404.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/nothing", nil))
	if rec.Code != 404 || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Errorf("unknown path: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/openapi.yaml", nil))
	if rec.Code != 200 || rec.Body.String() != string(schemas.OpenAPI) {
		t.Errorf("/openapi.yaml: %d", rec.Code)
	}
}
