package api_test

import (
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/klantreis/journey/services/api"
)

// The export of a fixture customer over the open test API: one complete
// document; a failure before anything was sent (the export timeout) is a
// problem response, not a broken document.
func TestExportOfAFixtureCustomer(t *testing.T) {
	hs, _, _ := newServer(t, api.Settings{})
	var doc struct {
		CustomerID   string            `json:"customer_id"`
		Touchpoints  []json.RawMessage `json:"touchpoints"`
		StageHistory []json.RawMessage `json:"stage_history"`
		Counts       map[string]int    `json:"counts"`
		Complete     bool              `json:"complete"`
	}
	code, _ := get(t, hs.URL, "/v1/customers/"+url.PathEscape(c3)+"/export", &doc)
	if code != 200 || doc.CustomerID != c3 || !doc.Complete || len(doc.Touchpoints) != 3 || doc.Counts["touchpoints"] != 3 {
		t.Fatalf("%d: %+v", code, doc)
	}
	hs2, _, _ := newServer(t, api.Settings{ExportTimeout: time.Nanosecond})
	var prob api.Problem
	code, h := get(t, hs2.URL, "/v1/customers/"+url.PathEscape(c3)+"/export", &prob)
	if code != 504 || h.Get("Content-Type") != "application/problem+json" || h.Get("Content-Disposition") != "" {
		t.Fatalf("timeout: %d %s %+v", code, h.Get("Content-Type"), prob)
	}
}
