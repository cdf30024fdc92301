package journeyctl_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/ops"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
	"github.com/klantreis/journey/services/api"
	"github.com/klantreis/journey/services/projector"
	"github.com/klantreis/journey/services/writer"
)

// pipeline runs the real writer and projector on the test's NATS server and
// ClickHouse database, in this process, until the test ends.
func (e *env) pipeline() {
	e.t.Helper()
	e.pipelineAt("127.0.0.1:0", "127.0.0.1:0")
}

// pipelineAt is pipeline with the writer's and the projector's ops
// addresses (their /metrics) given.
func (e *env) pipelineAt(writerOps, projectorOps string) {
	e.t.Helper()
	wcfg := e.writerConfig()
	wcfg.Writer.Addr, wcfg.Writer.BatchAge = writerOps, 50*time.Millisecond
	e.background("writer", func(ctx context.Context) error { return writer.Run(ctx, wcfg, quiet()) })

	pcfg := e.projectorConfig()
	pcfg.Projector.Addr, pcfg.Projector.WarehouseWait, pcfg.Projector.BatchAge = projectorOps, 50*time.Millisecond, 5*time.Millisecond
	e.background("projector", func(ctx context.Context) error { return projector.Run(ctx, pcfg, quiet()) })
}

// writerConfig is the writer's default configuration on the test's NATS
// server and ClickHouse database.
func (e *env) writerConfig() writer.Config {
	e.t.Helper()
	var c writer.Config
	envDefaults(e.t, &c)
	c.NATS.URL, c.ClickHouse, c.Stream = e.nats, e.ch, stream.DefaultTopology()
	return c
}

// projectorConfig is the projector's default configuration on the test's
// NATS server and ClickHouse database.
func (e *env) projectorConfig() projector.Config {
	e.t.Helper()
	var c projector.Config
	envDefaults(e.t, &c)
	c.NATS.URL, c.ClickHouse, c.Stream = e.nats, e.ch, stream.DefaultTopology()
	return c
}

// webVisit is a valid visit payload (a visit needs its channel).
var webVisit = touchpoint.Visit{Common: touchpoint.Common{Channel: "web"}}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func (e *env) background(name string, fn func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				e.t.Errorf("%s: %v", name, err)
			}
		case <-time.After(30 * time.Second):
			e.t.Errorf("%s did not stop", name)
		}
	})
}

func (e *env) publish(events ...touchpoint.Event) {
	e.t.Helper()
	publishFacts(e.t, e.js, events)
}

func mustEvent(t *testing.T, id, cust string, at time.Time, p touchpoint.Typed, ext map[string]string) touchpoint.Event {
	t.Helper()
	ev, err := touchpoint.New("test/dsar", id, cust, at, p)
	if err != nil {
		t.Fatal(err)
	}
	ev.Extensions = ext
	return ev
}

// exportDoc is the access document as a reader sees it.
type exportDoc struct {
	Format      string            `json:"format"`
	CustomerID  string            `json:"customer_id"`
	Touchpoints []json.RawMessage `json:"touchpoints"`
	Superseded  []tpJSON          `json:"superseded_touchpoints"`
	DeadLetters []struct {
		Consumer   string `json:"consumer"`
		Subject    string `json:"subject"`
		ErrorClass string `json:"error_class"`
	} `json:"dead_letters"`
	State []struct {
		Stage          string `json:"stage"`
		NPSComment     string `json:"nps_comment"`
		OpenComplaints uint32 `json:"open_complaints"`
	} `json:"state"`
	StageHistory []struct {
		From, To, Reason, Explanation string
		CauseEventIDs                 []string `json:"cause_event_ids"`
	} `json:"stage_history"`
	Responses []struct {
		EventID string `json:"event_id"`
		Score   uint8  `json:"score"`
		Comment string `json:"comment"`
	} `json:"satisfaction_responses"`
	Consent []struct {
		ID      string `json:"id"`
		Consent string `json:"consent"`
	} `json:"consent"`
	ProjectorState []json.RawMessage `json:"projector_state"`
	Counts         map[string]int    `json:"counts"`
	Complete       bool              `json:"complete"`
}

type tpJSON struct {
	Source, ID, Kind string
	Revision         uint32
	Extensions       map[string]string
	Data             map[string]any
}

func touchpoints(t *testing.T, d exportDoc) map[string]tpJSON {
	t.Helper()
	out := map[string]tpJSON{}
	for _, raw := range d.Touchpoints {
		var tp tpJSON
		if err := json.Unmarshal(raw, &tp); err != nil {
			t.Fatal(err)
		}
		if _, dup := out[tp.ID]; dup {
			t.Fatalf("touchpoint %s exported twice: a superseded revision leaked", tp.ID)
		}
		out[tp.ID] = tp
	}
	return out
}

// A customer with every kind of record: touchpoints of each kind, one of
// them corrected, a consent answer, a complaint with free text, a survey
// with a comment (a satisfaction response), stage history, and a dead
// letter. `journeyctl export` and GET /v1/customers/{id}/export each give
// one complete document holding all of it, and nothing of another
// customer; a read token is refused the export.
func TestExportHoldsEveryKindOfRecord(t *testing.T) {
	t.Parallel() // its own NATS server and database
	e := newEnv(t)
	e.pipeline()
	const cust, other = "dsar/alice", "dsar-bob"
	at := time.Now().Add(-48 * time.Hour).Truncate(time.Millisecond)
	visit := mustEvent(t, "v1", cust, at, touchpoint.Visit{Common: touchpoint.Common{Channel: "web"}},
		map[string]string{"consent": "marketing:granted,analytics:granted"})
	quote := mustEvent(t, "q1", cust, at.Add(time.Minute), touchpoint.Quote{QuoteID: "q1", Status: "sent", Amount: touchpoint.Amount{Cents: 900}, Currency: "EUR"}, nil)
	wrong := mustEvent(t, "o1", cust, at.Add(2*time.Minute), touchpoint.Order{OrderID: "o1", Status: "placed", Amount: touchpoint.Amount{Cents: 100}, Currency: "EUR"}, nil)
	fixed := mustEvent(t, "o1", cust, at.Add(2*time.Minute), touchpoint.Order{OrderID: "o1", Status: "placed", Amount: touchpoint.Amount{Cents: 1000}, Currency: "EUR"},
		map[string]string{touchpoint.ExtRevision: "1"})
	complaint := mustEvent(t, "k1", cust, at.Add(3*time.Minute), touchpoint.Complaint{ComplaintID: "k1", Status: "opened", Category: "delivery", Text: "the parcel never came"}, nil)
	survey := mustEvent(t, "s1", cust, at.Add(4*time.Minute), touchpoint.Survey{SurveyID: "nps", Score: 3, Comment: "call me at 0612345678"}, nil)
	bad := mustEvent(t, "s-bad", cust, at.Add(5*time.Minute), touchpoint.Survey{SurveyID: "nps", Score: 5}, nil)
	bad.Data = []byte(`{"survey_id":"nps","score":11}`)
	otherVisit := mustEvent(t, "v-bob", other, at, webVisit, nil)
	e.publish(visit, quote, wrong, fixed, complaint, survey, bad, otherVisit)

	waitFor(t, 2*time.Minute, "every record of the customer in ClickHouse", func() bool {
		return e.count("SELECT count() FROM events WHERE customer_id = ?", cust) == 6 &&
			e.count("SELECT count() FROM satisfaction_responses WHERE customer_id = ?", cust) == 1 &&
			e.count("SELECT count() FROM customer_state WHERE customer_id = ? AND responses = 1 AND open_complaints = 1", cust) >= 1 &&
			e.count("SELECT count() FROM stage_transitions WHERE customer_id = ? AND valid = 1", cust) >= 2 &&
			e.count("SELECT count() FROM events_dead WHERE arrayElement(splitByChar('.', subject), -1) = ?", stream.CustomerKey(cust)) >= 1
	})

	code, out, _ := e.run("--json", "export", cust)
	if code != 0 {
		t.Fatalf("journeyctl export exit %d", code)
	}
	var doc exportDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("journeyctl export is not one JSON document: %v", err)
	}
	checkExport(t, doc, cust, true)
	// The export is audited under the customer's hash: the audit trail is
	// not one more copy of the id.
	if n := e.count("SELECT count() FROM ops_audit WHERE action = 'export' AND position(selection, ?) > 0", customerSHA(cust)); n != 1 {
		t.Fatalf("%d audit rows for the export, want 1", n)
	}
	if n := e.count("SELECT count() FROM ops_audit WHERE position(selection, ?) > 0", cust); n != 0 {
		t.Fatalf("the audit trail holds the customer id in clear")
	}

	// The same document from the API, for an admin token only.
	srv, err := api.NewServer(api.Settings{Tokens: []string{"r-tok=read", "a-tok=admin"}}, ops.NewHealth(), nil, quiet())
	if err != nil {
		t.Fatal(err)
	}
	srv.SetStore(e.db)
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	path := hs.URL + "/v1/customers/" + url.PathEscape(cust) + "/export"
	if code, _ := httpGet(t, path, "r-tok"); code != http.StatusForbidden {
		t.Fatalf("read token: %d, want 403", code)
	}
	code, body := httpGet(t, path, "a-tok")
	if code != http.StatusOK {
		t.Fatalf("admin token: %d %s", code, body)
	}
	var viaAPI exportDoc
	if err := json.Unmarshal([]byte(body), &viaAPI); err != nil {
		t.Fatalf("the API's export is not one JSON document: %v\n%s", err, body)
	}
	checkExport(t, viaAPI, cust, false)
	t.Logf("export counts: journeyctl %v, api %v", doc.Counts, viaAPI.Counts)
}

func customerSHA(id string) string {
	s := sha256.Sum256([]byte(id))
	return hex.EncodeToString(s[:])
}

func httpGet(t *testing.T, u, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func checkExport(t *testing.T, doc exportDoc, cust string, withKV bool) {
	t.Helper()
	if doc.Format != "journey.dsar.v1" || doc.CustomerID != cust || !doc.Complete {
		t.Fatalf("head: format %q, customer %q, complete %v", doc.Format, doc.CustomerID, doc.Complete)
	}
	tps := touchpoints(t, doc)
	if len(tps) != 5 {
		t.Fatalf("%d touchpoints, want 5 (visit, quote, order, complaint, survey): %v", len(tps), tps)
	}
	for _, id := range []string{"v1", "q1", "o1", "k1", "s1"} {
		if _, ok := tps[id]; !ok {
			t.Errorf("touchpoint %s missing", id)
		}
	}
	if o := tps["o1"]; o.Revision != 1 || fmt.Sprint(o.Data["amount"]) != "10" {
		t.Errorf("order o1: revision %d data %v; want the correction (revision 1)", o.Revision, o.Data)
	}
	// The version the correction superseded is still held, so it is
	// exported too, apart.
	if len(doc.Superseded) != 1 || doc.Superseded[0].ID != "o1" || doc.Superseded[0].Revision != 0 || fmt.Sprint(doc.Superseded[0].Data["amount"]) != "1" {
		t.Errorf("superseded %+v, want order o1 at revision 0", doc.Superseded)
	}
	if k := tps["k1"]; k.Data["text"] != "the parcel never came" {
		t.Errorf("complaint text %v not exported", k.Data["text"])
	}
	if len(doc.DeadLetters) == 0 || !strings.HasSuffix(doc.DeadLetters[0].Subject, "."+stream.CustomerKey(cust)) {
		t.Errorf("dead letters %+v, want the invalid survey", doc.DeadLetters)
	}
	if len(doc.State) != 1 || doc.State[0].Stage != "new_customer" || doc.State[0].NPSComment != "call me at 0612345678" || doc.State[0].OpenComplaints != 1 {
		t.Errorf("state %+v", doc.State)
	}
	if len(doc.StageHistory) != 2 || doc.StageHistory[0].To != "prospect" || doc.StageHistory[1].To != "new_customer" ||
		doc.StageHistory[1].Explanation == "" || len(doc.StageHistory[1].CauseEventIDs) != 1 || doc.StageHistory[1].CauseEventIDs[0] != "o1" {
		t.Errorf("stage history %+v", doc.StageHistory)
	}
	if len(doc.Responses) != 1 || doc.Responses[0].EventID != "s1" || doc.Responses[0].Score != 3 || doc.Responses[0].Comment != "call me at 0612345678" {
		t.Errorf("responses %+v", doc.Responses)
	}
	if len(doc.Consent) != 1 || doc.Consent[0].ID != "v1" || doc.Consent[0].Consent != "marketing:granted,analytics:granted" {
		t.Errorf("consent %+v", doc.Consent)
	}
	if withKV {
		if len(doc.ProjectorState) != 1 || !strings.Contains(string(doc.ProjectorState[0]), `"customer_id":"`+cust+`"`) {
			t.Errorf("projector state %s", doc.ProjectorState)
		}
	} else if doc.ProjectorState != nil {
		t.Errorf("the API has no NATS access, yet exported a projector state")
	}
	want := map[string]int{"touchpoints": 5, "superseded_touchpoints": 1, "state": 1, "stage_history": 2, "satisfaction_responses": 1, "consent": 1}
	for k, n := range want {
		if doc.Counts[k] != n {
			t.Errorf("counts[%s] = %d, want %d", k, doc.Counts[k], n)
		}
	}
}

func (e *env) stage(cust string) string {
	e.t.Helper()
	var st string
	err := e.db.Conn.QueryRow(context.Background(), "SELECT CAST(stage AS String) FROM customer_state WHERE customer_id = ? ORDER BY version DESC LIMIT 1", cust).Scan(&st)
	if err != nil {
		return "(none)"
	}
	return st
}

// derivedCount is how many derived events of kind the DERIVED stream holds
// for the customer.
func (e *env) derivedCount(kind touchpoint.Kind, cust string) uint64 {
	e.t.Helper()
	s, err := e.js.Stream(context.Background(), stream.DerivedStream)
	if err != nil {
		e.t.Fatal(err)
	}
	subj := stream.DerivedSubject(kind, cust)
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(subj))
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Subjects[subj]
}

// lastStageChange is "from->to" of the customer's latest stage_changed.
func (e *env) lastStageChange(cust string) string {
	e.t.Helper()
	s, err := e.js.Stream(context.Background(), stream.DerivedStream)
	if err != nil {
		e.t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(context.Background(), stream.DerivedSubject(touchpoint.KindStageChanged, cust))
	if err != nil {
		return err.Error()
	}
	var d struct{ From, To string }
	if err := json.Unmarshal(m.Data, &d); err != nil {
		return err.Error()
	}
	return d.From + "->" + d.To
}

// Rectification end to end: an order corrected to a quote (same source and
// id, revision 1) makes the projector re-derive the customer from the log,
// and the customer is a prospect again everywhere: customer_state, the
// stage history (the new_customer transition invalidated), a stage_changed
// event back to prospect, and the export, which holds the quote only. The
// original sent again afterwards is stale and changes nothing.
func TestCorrectedOrderToQuoteChangesTheStageBack(t *testing.T) {
	t.Parallel() // its own NATS server and database
	e := newEnv(t)
	e.pipeline()
	const cust = "rect/1"
	at := time.Now().Add(-24 * time.Hour).Truncate(time.Millisecond)
	visit := mustEvent(t, "v", cust, at, webVisit, nil)
	order := mustEvent(t, "deal-7", cust, at.Add(time.Hour), touchpoint.Order{OrderID: "o7", Status: "placed", Amount: touchpoint.Amount{Cents: 5000}, Currency: "EUR"}, nil)
	e.publish(visit, order)
	waitFor(t, time.Minute, "the order to make a new customer", func() bool { return e.stage(cust) == "new_customer" })

	// The same (source, id), now a quote: published at once, inside the
	// stream's duplicate window.
	fixed := mustEvent(t, "deal-7", cust, at.Add(time.Hour), touchpoint.Quote{QuoteID: "q7", Status: "sent", Amount: touchpoint.Amount{Cents: 5000}, Currency: "EUR"},
		map[string]string{touchpoint.ExtRevision: "1"})
	e.publish(fixed)
	waitFor(t, time.Minute, "the correction to make a prospect again", func() bool { return e.stage(cust) == "prospect" })
	// The state and the history are separate inserts: wait for both.
	var ts []warehouse.Transition
	waitFor(t, 30*time.Second, "the stage history rewritten", func() bool {
		var err error
		ts, err = e.db.Transitions(context.Background(), cust)
		return err == nil && len(ts) == 1
	})
	if ts[0].To != "prospect" || ts[0].Reason != "first_touchpoint" {
		t.Fatalf("stage history %+v, want only the first touchpoint", ts)
	}
	waitFor(t, 30*time.Second, "a stage_changed event back to prospect", func() bool {
		return e.lastStageChange(cust) == "new_customer->prospect"
	})
	waitFor(t, 30*time.Second, "the writer to store the correction beside the original", func() bool {
		return e.count("SELECT count() FROM events WHERE customer_id = ? AND id = 'deal-7'", cust) == 2
	})

	// The original again, as a producer without message ids would resend
	// it, then a later visit to know it was processed.
	m, err := stream.NewFactMsg(&order)
	if err != nil {
		t.Fatal(err)
	}
	delete(m.Header, jetstream.MsgIDHeader)
	if _, err := e.js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	e.publish(mustEvent(t, "v2", cust, at.Add(2*time.Hour), webVisit, nil))
	waitFor(t, time.Minute, "the later visit", func() bool {
		return e.count("SELECT count() FROM customer_state WHERE customer_id = ? AND last_touch >= ?", cust, at.Add(2*time.Hour).Truncate(time.Second)) > 0
	})
	if st := e.stage(cust); st != "prospect" {
		t.Fatalf("the stale original made the customer %s", st)
	}

	var doc exportDoc
	e.runJSON(&doc, "export", "--json", "export", cust)
	tps := touchpoints(t, doc)
	if d := tps["deal-7"]; d.Kind != "quote" || d.Revision != 1 {
		t.Fatalf("deal-7 exported as %s revision %d, want the quote (revision 1)", d.Kind, d.Revision)
	}
	if len(doc.Superseded) != 1 || doc.Superseded[0].Kind != "order" || doc.Superseded[0].Revision != 0 {
		t.Fatalf("superseded %+v, want the order it was", doc.Superseded)
	}
	if len(doc.StageHistory) != 1 || doc.State[0].Stage != "prospect" {
		t.Fatalf("export: stage history %+v, state %+v", doc.StageHistory, doc.State)
	}
}

// Consent end to end: at_risk (marketing automation) goes out for a
// detractor who granted marketing, not for one who never answered, and not
// for one who withdrew just before, in the same stream; the satisfaction
// change goes out for all three. The withdrawal is invalid with a typo and
// is refused with a reason.
func TestAtRiskOnlyWithMarketingConsent(t *testing.T) {
	t.Parallel() // its own NATS server and database
	e := newEnv(t)
	e.pipeline()
	at := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	granted := map[string]string{touchpoint.ExtConsent: "marketing:granted,analytics:granted"}
	withdrawn := map[string]string{touchpoint.ExtConsent: "marketing:withdrawn"}
	sad := touchpoint.Survey{SurveyID: "nps", Score: 1}
	e.publish(
		mustEvent(t, "a-v", "yes", at, webVisit, granted),
		mustEvent(t, "a-s", "yes", at.Add(time.Minute), sad, nil),
		mustEvent(t, "b-v", "never", at, webVisit, nil),
		mustEvent(t, "b-s", "never", at.Add(time.Minute), sad, nil),
		mustEvent(t, "c-v", "withdrew", at, webVisit, granted),
		mustEvent(t, "c-w", "withdrew", at.Add(30*time.Second), webVisit, withdrawn),
		mustEvent(t, "c-s", "withdrew", at.Add(time.Minute), sad, nil),
	)
	for _, c := range []string{"yes", "never", "withdrew"} {
		waitFor(t, time.Minute, "the satisfaction change of "+c, func() bool { return e.derivedCount(touchpoint.KindSatisfactionChanged, c) >= 1 })
	}
	if n := e.derivedCount(touchpoint.KindAtRisk, "yes"); n != 1 {
		st, _ := e.js.Stream(context.Background(), stream.DerivedStream)
		info, _ := st.Info(context.Background(), jetstream.WithSubjectFilter(">"))
		_, out, _ := e.run("--json", "export", "yes")
		t.Fatalf("%d at_risk events for the consenting customer, want 1 (derived: %v)\n%s", n, info.State.Subjects, out)
	}
	for _, c := range []string{"never", "withdrew"} {
		if n := e.derivedCount(touchpoint.KindAtRisk, c); n != 0 {
			t.Errorf("%d at_risk events for %q, who did not consent to marketing", n, c)
		}
	}
	// The consent history is in the export, once the writer stored it.
	waitFor(t, time.Minute, "the writer to store the events of withdrew", func() bool {
		return e.count("SELECT count() FROM events WHERE customer_id = 'withdrew'") == 3
	})
	var doc exportDoc
	e.runJSON(&doc, "export", "--json", "export", "withdrew")
	if len(doc.Consent) != 2 || doc.Consent[0].ID != "c-v" || doc.Consent[1].Consent != "marketing:withdrawn" {
		t.Fatalf("consent history %+v", doc.Consent)
	}
	// A typo is not taken for "no answer": validation names it.
	bad := mustEvent(t, "d-v", "typo", at, webVisit, map[string]string{touchpoint.ExtConsent: "marketing:withdrawm"})
	if _, err := touchpoint.Validate(&bad, time.Now()); err == nil || !strings.Contains(err.Error(), `answer "withdrawm" for marketing is unknown`) {
		t.Fatalf("validation of a bad consent: %v", err)
	}
}

// A re-derive replays the stream through projectors of its own: a
// correction in it re-derives its customer from the stream there too, so
// the shadow projection holds the corrected customer (a prospect), and
// the catch-up does not stop at it.
func TestRederiveReplaysACorrection(t *testing.T) {
	t.Parallel() // its own NATS server and database
	e := newEnv(t)
	const cust = "rect/rederive"
	at := time.Now().Add(-48 * time.Hour).Truncate(time.Millisecond)
	order := mustEvent(t, "deal-9", cust, at.Add(time.Hour), touchpoint.Order{OrderID: "o9", Status: "placed", Amount: touchpoint.Amount{Cents: 100}, Currency: "EUR"}, nil)
	fixed := mustEvent(t, "deal-9", cust, at.Add(time.Hour), touchpoint.Quote{QuoteID: "q9", Status: "sent", Amount: touchpoint.Amount{Cents: 100}, Currency: "EUR"},
		map[string]string{touchpoint.ExtRevision: "1"})
	e.publish(mustEvent(t, "v9", cust, at, webVisit, nil), order, fixed)
	code, _, _ := e.run("--json", "rederive", "start", "--rules", "loyal=2/365d")
	if code != 0 {
		t.Fatalf("rederive start exit %d", code)
	}
	var stage string
	if err := e.db.Conn.QueryRow(context.Background(), "SELECT CAST(stage AS String) FROM customer_state__v2 WHERE customer_id = ? ORDER BY version DESC LIMIT 1", cust).Scan(&stage); err != nil {
		t.Fatal(err)
	}
	if stage != "prospect" {
		t.Fatalf("the shadow projection made the corrected customer %s, want prospect", stage)
	}
}
