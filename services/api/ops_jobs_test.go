package api_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/audit"
	"github.com/klantreis/journey/pkg/deadletter"
	"github.com/klantreis/journey/pkg/opsjob"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/services/api"
)

// POST /v1/ops/jobs queues a journeyctl command for a worker, refuses what
// a job may not run with a reason, and GET shows the job; only an admin
// token may. (The worker running it: services/journeyctl, TestJobsThroughTheAPI.)
func TestOpsJobsQueueThroughTheAPI(t *testing.T) {
	ctx := context.Background()
	js := startJetStream(t)
	if _, err := js.CreateStream(ctx, audit.StreamConfig(stream.DefaultTopology())); err != nil {
		t.Fatal(err)
	}
	db := warehousetest.Open(t)
	hs, srv, _ := serve(t, db, api.Settings{Tokens: []string{"adm-token=admin", "rd-token=read"}})
	srv.SetOpsActions(deadletter.Ops{JS: js, DB: db}, opsjob.NewBinder(js), audit.Recorder{JS: js, DB: db, Source: "journey-api"})
	base := hs.URL + "/v1/ops/jobs"
	if code, body := authPost(t, base, "adm-token", `{"args":["status"]}`); code != 503 || !strings.Contains(body, "journeyctl jobs work") {
		t.Fatalf("before any worker made the queue: %d %s, want 503 saying to start one", code, body)
	}
	if _, err := opsjob.Open(ctx, js, 1); err != nil { // what a worker does first
		t.Fatal(err)
	}
	for body, want := range map[string]string{
		`{"args":["erase","cust-1"]}`:          `command \"erase\" is not one a job runs`,
		`{"args":["replay","--nats-url=x"]}`:   "--nats-url is set by the worker",
		`{"args":[]}`:                          "args is empty",
		`{"command":"replay"}`:                 "command",
		`{"args":["rederive","diff"]} garbage`: "", // a trailing value is ignored by Decode; the job is valid
	} {
		code, got := authPost(t, base, "adm-token", body)
		if want == "" {
			if code != 202 {
				t.Errorf("%s: %d %s, want 202", body, code, got)
			}
			continue
		}
		if code != 400 || !strings.Contains(got, want) {
			t.Errorf("%s: %d %s, want 400 saying %q", body, code, got, want)
		}
	}
	if code, _ := authPost(t, base, "rd-token", `{"args":["status"]}`); code != 403 {
		t.Errorf("a read token queued a job: %d, want 403", code)
	}
	code, body := authPost(t, base, "adm-token", `{"args":["rederive","switch","--version","v2"]}`)
	var j opsjob.Job
	if code != 202 || json.Unmarshal([]byte(body), &j) != nil || j.State != opsjob.Queued || !strings.HasPrefix(j.Actor, "api:token-") {
		t.Fatalf("submit: %d %s, want 202 with a queued job of the token's actor", code, body)
	}
	code, body = authGet(t, base+"/"+j.ID, "adm-token")
	if code != 200 || !strings.Contains(body, `"args":["rederive","switch","--version","v2"]`) {
		t.Fatalf("get: %d %s", code, body)
	}
	if code, _ := authGet(t, base+"/job-nothing", "adm-token"); code != 404 {
		t.Errorf("get of no job: %d, want 404", code)
	}
	var list struct {
		Jobs  []opsjob.Job `json:"jobs"`
		Count int          `json:"count"`
	}
	code, body = authGet(t, base+"?limit=1", "adm-token")
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || list.Count != 1 || list.Jobs[0].ID != j.ID {
		t.Fatalf("list: %d %s, want the newest job only", code, body)
	}
	if code, _ := authGet(t, base+"?limit=0", "adm-token"); code != 400 {
		t.Errorf("limit=0: %d, want 400", code)
	}
	var audited uint64
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM ops_audit WHERE action = 'jobs.submit' AND actor LIKE 'api:token-%'").Scan(&audited); err != nil || audited != 2 {
		t.Errorf("%d jobs.submit rows in ops_audit (%v), want 2", audited, err)
	}
}
