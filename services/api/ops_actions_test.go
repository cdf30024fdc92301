package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/audit"
	"github.com/klantreis/journey/pkg/deadletter"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/services/api"
)

// An operator lists, shows, redrives (with a fixed body) and purges dead
// letters through the API as journeyctl does: the redriven event is back
// on TOUCHPOINTS with its (source, id), the dead letters are recorded and
// gone, and each action is in the audit trail under the token's hash.
func TestDeadLetterActionsThroughTheAPI(t *testing.T) {
	ctx := context.Background()
	js := startJetStream(t)
	if err := stream.DefaultTopology().Ensure(ctx, js); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, audit.StreamConfig(stream.DefaultTopology())); err != nil {
		t.Fatal(err)
	}
	good, err := touchpoint.New("test-shop", "order-1", "cust-dead", time.Now().Add(-time.Hour),
		touchpoint.Order{OrderID: "O1", Status: "placed", Amount: touchpoint.Amount{Cents: 1250}, Currency: "EUR", Items: 1})
	if err != nil {
		t.Fatal(err)
	}
	m, err := stream.NewFactMsg(&good)
	if err != nil {
		t.Fatal(err)
	}
	fixed := string(m.Data)
	bad := strings.Replace(fixed, `"EUR"`, `"EURO"`, 1)
	for i, data := range []string{bad, `{"not":"an order"}`} {
		d := stream.DeadLetter{Consumer: "writer", Subject: m.Subject, StreamSeq: uint64(10 + i), Delivered: 1,
			Header: m.Header, Data: []byte(data), Class: "invalid", Err: errors.New("currency: not an ISO 4217 code")}
		if err := stream.PublishDeadLetter(ctx, js, d); err != nil {
			t.Fatal(err)
		}
	}
	db := warehousetest.Open(t)
	hs, srv, _ := serve(t, db, api.Settings{Tokens: []string{"adm-token=admin", "rd-token=read"}})
	base := hs.URL + "/v1/ops/deadletters"
	if code, body := authGet(t, base, "adm-token"); code != 503 || !strings.Contains(body, "JOURNEY_API_OPS_ACTIONS") {
		t.Fatalf("without ops actions: %d %s, want 503 naming the setting", code, body)
	}
	srv.SetOpsActions(deadletter.Ops{JS: js, DB: db}, nil, audit.Recorder{JS: js, DB: db, Source: "journey-api"})
	if code, _ := authGet(t, base, "rd-token"); code != 403 {
		t.Errorf("a read token lists dead letters: %d, want 403", code)
	}
	var list struct {
		DeadLetters []deadletter.View `json:"dead_letters"`
		Count       int               `json:"count"`
	}
	code, body := authGet(t, base+"?consumer=writer&class=invalid", "adm-token")
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || list.Count != 2 {
		t.Fatalf("list: %d %s, want the 2 dead letters", code, body)
	}
	first, second := list.DeadLetters[0], list.DeadLetters[1]
	if first.Reason != "currency: not an ISO 4217 code" || first.Body != "" {
		t.Errorf("listed %+v: want the reason and no body", first)
	}
	if code, body := authGet(t, base+"?since=yesterday", "adm-token"); code != 400 || !strings.Contains(body, "since") {
		t.Errorf("a bad time: %d %s, want 400 naming since", code, body)
	}
	var shown deadletter.View
	code, body = authGet(t, base+"/"+jsonNum(first.Seq), "adm-token")
	if code != 200 || json.Unmarshal([]byte(body), &shown) != nil || shown.Body != bad {
		t.Fatalf("show: %d %s, want the bad body", code, body)
	}
	if code, _ := authGet(t, base+"/999999", "adm-token"); code != 404 {
		t.Errorf("show of no dead letter: %d, want 404", code)
	}
	if code, body := authPost(t, base+"/redrive", "adm-token", `{"seqs":[1],"colour":"red"}`); code != 400 || !strings.Contains(body, "colour") {
		t.Errorf("an unknown field: %d %s, want 400 naming it", code, body)
	}
	if code, _ := authPost(t, base+"/redrive", "adm-token", `{}`); code != 400 {
		t.Errorf("a redrive that selects nothing: %d, want 400", code)
	}

	// Redrive the first with its fixed body.
	code, body = authPost(t, base+"/redrive", "adm-token", `{"seqs":[`+jsonNum(first.Seq)+`],"fixed_body":`+fixed+`}`)
	if code != 200 || !strings.Contains(body, `"outcome":"redriven"`) {
		t.Fatalf("redrive: %d %s, want redriven", code, body)
	}
	ts, _ := js.Stream(ctx, stream.TouchpointStream)
	info, _ := ts.Info(ctx)
	back, err := ts.GetMsg(ctx, info.State.LastSeq)
	if err != nil || back.Header.Get("ce-id") != "order-1" || back.Header.Get("ce-source") != "test-shop" || back.Header.Get("ce-redrive") == "" {
		t.Fatalf("the redriven event on TOUCHPOINTS: %v %v, want order-1 from test-shop with the redrive marker", err, back)
	}
	if code, body := authPost(t, base+"/purge", "adm-token", `{"seqs":[`+jsonNum(second.Seq)+`]}`); code != 400 || !strings.Contains(body, "reason") {
		t.Errorf("a purge without reason: %d %s, want 400 naming reason", code, body)
	}
	code, body = authPost(t, base+"/purge", "adm-token", `{"seqs":[`+jsonNum(second.Seq)+`],"reason":"test data"}`)
	if code != 200 || !strings.Contains(body, `"purged":1`) {
		t.Fatalf("purge: %d %s", code, body)
	}
	ds, _ := js.Stream(ctx, stream.DeadLetterStream)
	if info, _ := ds.Info(ctx); info.State.Msgs != 0 {
		t.Errorf("%d dead letters left, want 0", info.State.Msgs)
	}

	// The records and the audit trail name the token by its hash.
	var resolved, audited uint64
	var actor string
	if err := db.Conn.QueryRow(ctx, "SELECT count(), any(actor) FROM deadletter_resolutions WHERE actor LIKE 'api:token-%'").Scan(&resolved, &actor); err != nil {
		t.Fatal(err)
	}
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM ops_audit WHERE actor = ? AND action IN ('deadletters.show', 'deadletters.redrive', 'deadletters.purge')", actor).Scan(&audited); err != nil {
		t.Fatal(err)
	}
	if resolved != 2 || audited != 3 || strings.Contains(actor, "adm-token") {
		t.Errorf("resolutions %d audit rows %d by %q, want 2 and 3 by the token's hash", resolved, audited, actor)
	}
	ops, _ := js.Stream(ctx, audit.Stream)
	if ev, err := ops.GetLastMsgForSubject(ctx, "ops.deadletters.purge"); err != nil || ev.Header.Get("ce-type") != audit.Type("deadletters.purge") {
		t.Errorf("the purge's ops event: %v %v", err, ev)
	}
}

func jsonNum(n uint64) string { b, _ := json.Marshal(n); return string(b) }
