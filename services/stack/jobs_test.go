package stack_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// With JOURNEY_API_OPS_ACTIONS=true the stack runs a jobs worker beside
// the API: a job queued with POST /v1/ops/jobs runs, as admin, and its
// result is served.
func TestStackRunsOpsJobs(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), 50)
	cfg.API.API.OpsActions = true
	s := start(t, cfg)
	do := func(method, path, body string) (int, map[string]any) {
		code, raw := authed(t, method, strings.TrimSuffix(s.ep.APIURL, "/")+path, s.ep.APIToken, "", []byte(body))
		var v map[string]any
		_ = json.Unmarshal(raw, &v)
		return code, v
	}
	var id string
	deadline := time.Now().Add(time.Minute)
	for id == "" {
		code, v := do("POST", "/v1/ops/jobs", `{"args":["status","--sample","100ms"]}`)
		switch {
		case code == http.StatusAccepted:
			id, _ = v["id"].(string)
		case code != http.StatusServiceUnavailable || time.Now().After(deadline):
			t.Fatalf("POST /v1/ops/jobs: %d %v", code, v)
		default:
			time.Sleep(200 * time.Millisecond) // the admin connections or the worker's queue not up yet
		}
	}
	for {
		code, v := do("GET", "/v1/ops/jobs/"+id, "")
		if code != http.StatusOK {
			t.Fatalf("GET job: %d %v", code, v)
		}
		if st := v["state"]; st == "done" || st == "failed" {
			res, _ := v["result"].(map[string]any)
			t.Logf("job %s: %s, exit %v, result keys %d", id, st, v["exit"], len(res))
			if st != "done" || res["streams"] == nil {
				t.Fatalf("the status job: %v, want done with the streams", v)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job did not finish: %v", v)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
