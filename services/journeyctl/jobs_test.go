package journeyctl_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/klantreis/journey/pkg/opsjob"
	"github.com/klantreis/journey/services/api"
	"github.com/klantreis/journey/services/journeyctl"
)

// startOpsAPI runs the api with its ops actions, following the live rules
// version, and returns its base URL.
func (e *env) startOpsAPI(t *testing.T) string {
	return e.runAPI(t, api.Settings{Addr: "127.0.0.1:0", Tokens: []string{"ops-token=admin"}, FollowRules: true, OpsActions: true})
}

// startWorker runs `journeyctl jobs work` in-process until the test ends.
func (e *env) startWorker(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var errOut lockedBuffer
	en := &journeyctl.Env{Config: e.config(), Out: io.Discard, Err: &errOut, Log: slog.New(slog.NewTextHandler(&errOut, nil))}
	go func() {
		done <- journeyctl.Run(ctx, []string{"jobs", "work", "--poll", "100ms", "--name", "test-worker"}, en)
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("jobs work exited %d", code)
		}
		t.Logf("worker:\n%s", errOut.String())
	})
}

// runJob submits args through the API and waits for the job to finish.
func runJob(t *testing.T, base string, args ...string) opsjob.Job {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"args": args})
	req, _ := http.NewRequest("POST", base+"/v1/ops/jobs", strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer ops-token")
	var j opsjob.Job
	waitFor(t, 30*time.Second, "the API to queue "+strings.Join(args, " "), func() bool {
		req.Body, _ = req.GetBody()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusServiceUnavailable { // the admin connections or the queue not there yet
			return false
		}
		if resp.StatusCode != http.StatusAccepted || json.Unmarshal(raw, &j) != nil {
			t.Fatalf("POST /v1/ops/jobs %s: %d %s", body, resp.StatusCode, raw)
		}
		return true
	})
	waitFor(t, 2*time.Minute, "job "+j.ID+" ("+strings.Join(args, " ")+") to finish", func() bool {
		req, _ := http.NewRequest("GET", base+"/v1/ops/jobs/"+j.ID, nil)
		req.Header.Set("Authorization", "Bearer ops-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&j); err != nil {
			t.Fatal(err)
		}
		return j.State == opsjob.Done || j.State == opsjob.Failed
	})
	t.Logf("job %s: %s, exit %d, %s", strings.Join(args, " "), j.State, j.Exit, j.Result)
	return j
}

// The API offers the re-derive as jobs: start, switch and rollback asked
// for with POST /v1/ops/jobs run in a worker as the same commands, and the
// API serves the new stages after the switch and the old ones after the
// rollback. A job that fails says why; each action is audited under the
// API token's actor.
func TestRederiveThroughTheAPIJobs(t *testing.T) {
	t.Parallel() // its own NATS server and database
	e := newEnv(t)
	now := time.Now().UTC()
	events := rederiveFixture(t, now)
	publishFacts(t, e.js, events)
	e.startProjector(t)
	base := map[string]string{"c-a": "new_customer", "c-b": "loyal_customer", "c-c": "new_customer", "c-d": "prospect",
		"c-e": "new_customer", "c-f": "new_customer", "c-g": "new_customer"}
	waitFor(t, time.Minute, "the live projection of the fixture", func() bool {
		return e.count("SELECT count() FROM (SELECT customer_id FROM customer_state GROUP BY customer_id)") == uint64(len(fixtureIDs))
	})
	url := e.startOpsAPI(t)
	stages := func() map[string]string { return apiStagesWith(t, url, "ops-token", fixtureIDs...) }
	waitFor(t, 30*time.Second, "the api serving the base stages", func() bool { return reflect.DeepEqual(stages(), base) })
	e.startWorker(t)

	j := runJob(t, url, "rederive", "start", "--rules", "loyal=2/365d")
	var st journeyctl.StartResult
	if j.State != opsjob.Done || json.Unmarshal(j.Result, &st) != nil || st.Version != "v2" || st.Events != len(events) {
		t.Fatalf("rederive start job: %+v, want done with v2 over %d events", j, len(events))
	}
	if j := runJob(t, url, "rederive", "switch", "--version", "v9"); j.State != opsjob.Failed || j.Exit == 0 || !strings.Contains(j.Error, "v9") {
		t.Fatalf("a switch to no version: %+v, want failed saying v9", j)
	}
	j = runJob(t, url, "rederive", "switch")
	var sw journeyctl.SwitchResult
	if j.State != opsjob.Done || json.Unmarshal(j.Result, &sw) != nil || sw.Live != "v2" {
		t.Fatalf("switch job: %+v, want done with v2 live", j)
	}
	switched := map[string]string{}
	for k, v := range base {
		switched[k] = v
	}
	switched["c-a"], switched["c-g"] = "loyal_customer", "loyal_customer"
	waitFor(t, 30*time.Second, "the api serving v2's stages", func() bool { return reflect.DeepEqual(stages(), switched) })
	if j = runJob(t, url, "rederive", "rollback"); j.State != opsjob.Done {
		t.Fatalf("rollback job: %+v", j)
	}
	waitFor(t, 30*time.Second, "the api serving v1's stages again", func() bool { return reflect.DeepEqual(stages(), base) })
	audited := e.count("SELECT count() FROM ops_audit WHERE action IN ('rederive.switch', 'rederive.rollback') AND actor LIKE 'api:token-%' AND outcome = 'ok'")
	submitted := e.count("SELECT count() FROM ops_audit WHERE action = 'jobs.submit' AND actor LIKE 'api:token-%'")
	t.Logf("audit: %d jobs submitted, %d switch/rollback done under the token's actor", submitted, audited)
	if audited != 2 || submitted != 4 {
		t.Fatalf("audit: %d switch/rollback rows and %d submissions under the API token, want 2 and 4", audited, submitted)
	}
}

// apiStagesWith is apiStages with a bearer token (none when token is "").
func apiStagesWith(t *testing.T, base, token string, ids ...string) map[string]string {
	out := map[string]string{}
	for _, id := range ids {
		req, _ := http.NewRequest("GET", base+"/v1/customers/"+id, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			Stage string `json:"stage"`
		}
		if resp.StatusCode == http.StatusOK {
			_ = json.NewDecoder(resp.Body).Decode(&c)
		}
		resp.Body.Close()
		out[id] = c.Stage
	}
	return out
}

// A job that runs longer than one write's timeout (15 s) keeps its
// heartbeat and records its end: `status --sample 17s` measures for 17 s.
func TestALongJobKeepsItsHeartbeat(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	q, err := opsjob.Open(ctx, e.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	j, err := q.Submit(ctx, []string{"status", "--sample", "17s"}, "test:long", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	e.startWorker(t)
	var beats []time.Time
	waitFor(t, time.Minute, "the long job to finish", func() bool {
		got, _, err := q.Get(ctx, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Heartbeat != nil && (len(beats) == 0 || !got.Heartbeat.Equal(beats[len(beats)-1])) {
			beats = append(beats, *got.Heartbeat)
		}
		j = got
		return got.State == opsjob.Done || got.State == opsjob.Failed
	})
	t.Logf("state %s after %d attempts, %d heartbeats seen, ran %.1fs", j.State, j.Attempts, len(beats), j.Finished.Sub(*j.Started).Seconds())
	if j.State != opsjob.Done || j.Attempts != 1 || len(beats) < 6 {
		t.Fatalf("the long job: state %s, %d attempts, %d heartbeats; want done at the first attempt with a heartbeat every 2 s", j.State, j.Attempts, len(beats))
	}
}
