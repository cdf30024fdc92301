package stack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/natsserver/natstest"
	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/ops"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
	"github.com/klantreis/journey/services/api"
	"github.com/klantreis/journey/services/projector"
)

// b2bWho is a contact of a customer in an account with a DMU role.
type b2bWho struct{ customer, contact, account, role string }

// b2bFixture is a hand-made B2B history relative to now:
//
//   - acme: contacts of two customers. dora (decision maker) last touched
//     60 days ago; bob (buyer) and uma (user, another customer) place 3
//     orders within 30 days: loyal. ivo (influencer) sent a quote 10 days
//     ago that is still open, and no decision maker was engaged in 30 days:
//     a coverage gap. Answers (all the same day): bob 10 then 4 (counted
//     once, as a detractor buyer: at risk), ivo 8, uma 9, gus (user) 10:
//     NPS 100 x (2-1)/4 = 25. max (influencer) moved to globex yesterday.
//     dora's late event (70 days ago, as an influencer) arrives last and
//     changes neither her role nor the gap.
//   - initech: ines, a decision maker, ordered 30 days ago (new_customer),
//     has a quote open but was engaged 2 days ago (no gap) and an open
//     complaint (at risk).
//   - globex: max's one visit: a prospect.
func b2bFixture(t *testing.T, now time.Time) []touchpoint.Event {
	day := func(d float64) time.Time {
		return now.Add(-time.Duration(d * float64(24*time.Hour))).Truncate(time.Second)
	}
	var (
		dora = b2bWho{"cust-acme", "dora", "acme", "decision_maker"}
		bob  = b2bWho{"cust-acme", "bob", "acme", "buyer"}
		ivo  = b2bWho{"cust-acme", "ivo", "acme", "influencer"}
		maxA = b2bWho{"cust-acme", "max", "acme", "influencer"}
		maxG = b2bWho{"cust-acme", "max", "globex", "influencer"}
		uma  = b2bWho{"cust-acme-2", "uma", "acme", "user"}
		gus  = b2bWho{"cust-acme-2", "gus", "acme", "user"}
		ines = b2bWho{"cust-initech", "ines", "initech", "decision_maker"}
	)
	var out []touchpoint.Event
	add := func(w b2bWho, at time.Time, p touchpoint.Typed) {
		e, err := touchpoint.New("fixture/crm", fmt.Sprintf("b2b-%03d", len(out)+1), w.customer, at, p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	c := func(w b2bWho, ch string) touchpoint.Common {
		return touchpoint.Common{AccountID: w.account, ContactID: w.contact, DMURole: w.role, Channel: ch}
	}
	eur := touchpoint.Amount{Cents: 400000}
	// The answers lie in one UTC day, so that the daily NPS by account
	// covers each respondent's latest answer.
	sd := surveyDay(now)
	add(dora, day(60), touchpoint.Visit{Common: c(dora, "web")})
	add(maxA, day(100), touchpoint.Visit{Common: c(maxA, "event")})
	add(bob, day(50), touchpoint.Order{Common: c(bob, ""), OrderID: "o1", Status: "placed", Amount: eur, Currency: "EUR"})
	add(bob, day(40), touchpoint.Order{Common: c(bob, ""), OrderID: "o2", Status: "placed", Amount: eur, Currency: "EUR"})
	add(uma, day(20), touchpoint.Order{Common: c(uma, ""), OrderID: "o1", Status: "placed", Amount: eur, Currency: "EUR"})
	add(ivo, day(10), touchpoint.Quote{Common: c(ivo, ""), QuoteID: "Q1", Status: "sent", Amount: eur, Currency: "EUR"})
	add(bob, sd, touchpoint.Survey{Common: c(bob, ""), SurveyID: "nps", Score: 10})
	add(bob, sd.Add(time.Hour), touchpoint.Survey{Common: c(bob, ""), SurveyID: "nps", Score: 4, Comment: "slow delivery"})
	add(ivo, sd.Add(time.Hour), touchpoint.Survey{Common: c(ivo, ""), SurveyID: "nps", Score: 8})
	add(uma, sd.Add(time.Hour), touchpoint.Survey{Common: c(uma, ""), SurveyID: "nps", Score: 9})
	add(gus, sd.Add(time.Hour), touchpoint.Survey{Common: c(gus, ""), SurveyID: "nps", Score: 10})
	add(maxG, day(1), touchpoint.Visit{Common: c(maxG, "web")})
	add(ines, day(30), touchpoint.Order{Common: c(ines, ""), OrderID: "i1", Status: "placed", Amount: eur, Currency: "EUR"})
	add(ines, day(5), touchpoint.Quote{Common: c(ines, ""), QuoteID: "IQ", Status: "sent", Amount: eur, Currency: "EUR"})
	add(ines, day(2), touchpoint.Complaint{Common: c(ines, ""), ComplaintID: "K1", Status: "opened", Category: "delivery"})
	late := dora
	late.role = "influencer"
	add(late, day(70), touchpoint.Visit{Common: c(late, "phone")})
	return out
}

func surveyDay(now time.Time) time.Time {
	return now.UTC().Add(-48 * time.Hour).Truncate(24 * time.Hour).Add(10 * time.Hour)
}

// accountStack is a projector with the account projection on, fed the
// B2B fixture, and an API over its warehouse.
type accountStack struct {
	js     jetstream.JetStream
	cfg    projector.Config
	db     *warehouse.DB
	api    string // base URL
	now    time.Time
	events []touchpoint.Event
}

func startAccountStack(t *testing.T) *accountStack {
	t.Helper()
	ctx := context.Background()
	srv := natstest.Start(t)
	t.Cleanup(srv.Shutdown)
	conn := stream.Conn{URL: srv.ClientURL(), ReconnectWait: 100 * time.Millisecond, RequestTimeout: 10 * time.Second}
	nc, js, err := stream.Connect(conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	topo := stream.DefaultTopology()
	topo.Partitions = 4
	if err := topo.Ensure(ctx, js); err != nil {
		t.Fatal(err)
	}
	chCfg := warehousetest.Config(t)
	cfg := projector.Config{NATS: conn, Stream: topo, ClickHouse: chCfg, Projector: projector.Settings{
		Addr: "127.0.0.1:0", Partitions: "all", OutboxStream: "OUTBOX_ACCT", WarehouseBatch: 20000, WarehouseWait: 50 * time.Millisecond,
		Durable: "proj-acct", Bucket: "st_acct", IndexBucket: "ix_acct", BatchSize: 500, BatchAge: 2 * time.Millisecond,
		AckWait: 30 * time.Second, CacheSize: 1000, SweepInterval: time.Minute, LoyalOrders: 3, LoyalWindow: 365 * journey.Day,
		InactiveAfter: 365 * journey.Day, MaxBackoff: time.Second, Drain: 5 * time.Second,
		Accounts: projector.AccountSettings{Enabled: true, Bucket: "acct_acct", CoverageWindow: 90 * journey.Day, GapWindow: 30 * journey.Day},
	}}
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- projector.Run(pctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("projector: %v", err)
		}
	})

	now := time.Now().UTC()
	events := b2bFixture(t, now)
	publishAll(t, js, events[:len(events)-1], true)
	drain(t, js, cfg)
	publishAll(t, js, events[len(events)-1:], true) // the decision maker's late event, in a batch of its own
	drain(t, js, cfg)

	db, err := warehouse.Open(ctx, chCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	a, err := api.NewServer(api.Settings{}, ops.NewHealth(), db.Ping, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	a.SetStore(db)
	hs := httptest.NewServer(a.Handler())
	t.Cleanup(hs.Close)
	return &accountStack{js: js, cfg: cfg, db: db, api: hs.URL, now: now, events: events}
}

func TestAccountsEndToEnd(t *testing.T) {
	st := startAccountStack(t)
	js, cfg, now, events := st.js, st.cfg, st.now, st.events
	hs := struct{ URL string }{st.api}

	var acme api.AccountJSON
	getJSON(t, hs.URL+"/v1/accounts/acme", 200, &acme)
	t.Logf("acme: stage %s gap %v quotes %v coverage %v nps %+v at risk %v %v members %d former %d",
		acme.Stage, acme.Gap, acme.OpenQuotes, acme.Coverage, acme.NPS, acme.AtRisk, acme.AtRiskReasons, len(acme.Members), acme.FormerMembers)
	if acme.Stage != "loyal_customer" || acme.RulesVersion != "account-rules/1" {
		t.Errorf("acme stage %s (%s), want loyal_customer by account-rules/1", acme.Stage, acme.RulesVersion)
	}
	var reasons []string
	for _, tr := range acme.Explain.Transitions {
		reasons = append(reasons, tr.Reason)
	}
	if want := []string{"first_touchpoint", "first_order", "repeat_orders"}; !reflect.DeepEqual(reasons, want) {
		t.Errorf("acme explanation %v, want %v", reasons, want)
	} else if got := acme.Explain.Transitions[2].CauseEventIDs; !reflect.DeepEqual(got, []string{"b2b-003", "b2b-004", "b2b-005"}) {
		t.Errorf("loyal because of %v, want the 3 orders of bob and uma", got)
	}
	if !acme.Gap || !reflect.DeepEqual(acme.OpenQuotes, []string{"Q1"}) {
		t.Errorf("acme gap %v quotes %v, want the open quote Q1 as a gap", acme.Gap, acme.OpenQuotes)
	}
	if want := []string{"decision_maker", "influencer", "buyer", "user"}; !reflect.DeepEqual(acme.Coverage, want) ||
		!reflect.DeepEqual(acme.Uncovered, []string{"gatekeeper"}) {
		t.Errorf("acme coverage %v uncovered %v, want %v and gatekeeper", acme.Coverage, acme.Uncovered, want)
	}
	if acme.NPS.NPS == nil || *acme.NPS.NPS != 25 || acme.NPS.Respondents != 4 || acme.NPS.Detractors != 1 {
		t.Errorf("acme nps %+v, want 25 over 4 respondents, 1 detractor", acme.NPS)
	}
	if !acme.AtRisk || !reflect.DeepEqual(acme.AtRiskReasons, []string{"detractor_buyer"}) {
		t.Errorf("acme at risk %v %v, want detractor_buyer", acme.AtRisk, acme.AtRiskReasons)
	}
	var contacts []string
	for _, m := range acme.Members {
		contacts = append(contacts, m.ContactID+":"+m.Role)
	}
	if want := []string{"dora:decision_maker", "ivo:influencer", "bob:buyer", "gus:user", "uma:user"}; !reflect.DeepEqual(contacts, want) || acme.FormerMembers != 1 {
		t.Errorf("acme members %v former %d, want %v and max as former", contacts, acme.FormerMembers, want)
	}
	if dora := acme.Members[0]; !dora.LastTouch.Equal(now.Add(-60 * 24 * time.Hour).Truncate(time.Second)) {
		t.Errorf("dora's last touch %s: her late, older event must not move it", dora.LastTouch)
	}

	var initech, globex api.AccountJSON
	getJSON(t, hs.URL+"/v1/accounts/initech", 200, &initech)
	getJSON(t, hs.URL+"/v1/accounts/globex", 200, &globex)
	if initech.Stage != "new_customer" || initech.Gap || !reflect.DeepEqual(initech.AtRiskReasons, []string{"open_complaint"}) {
		t.Errorf("initech %s gap %v risk %v, want new_customer, no gap, open_complaint", initech.Stage, initech.Gap, initech.AtRiskReasons)
	}
	if globex.Stage != "prospect" || len(globex.Members) != 1 || globex.Members[0].ContactID != "max" {
		t.Errorf("globex %s members %+v, want a prospect with max", globex.Stage, globex.Members)
	}
	for q, want := range map[string][]string{
		"gap=true": {"acme"}, "at_risk=true": {"acme", "initech"}, "stage=prospect": {"globex"},
		"gap=false&at_risk=false": {"globex"}, "": {"acme", "globex", "initech"},
	} {
		var page api.AccountPage
		getJSON(t, hs.URL+"/v1/accounts?"+q, 200, &page)
		var ids []string
		for _, it := range page.Items {
			ids = append(ids, it.AccountID)
		}
		if !reflect.DeepEqual(ids, want) {
			t.Errorf("/v1/accounts?%s = %v, want %v", q, ids, want)
		}
	}
	getJSON(t, hs.URL+"/v1/accounts?gap=maybe", 400, nil)
	getJSON(t, hs.URL+"/v1/accounts/nobody", 404, nil)

	// The NPS metric by account agrees for the day of the answers.
	d := surveyDay(now).Truncate(24 * time.Hour)
	var rep api.NPSReport
	getJSON(t, fmt.Sprintf("%s/v1/metrics/nps?group_by=account&interval=day&from=%s&to=%s", hs.URL,
		d.Format("2006-01-02"), d.Add(24*time.Hour).Format("2006-01-02")), 200, &rep)
	found := false
	for _, s := range rep.Series {
		if s.Group != "acme" {
			continue
		}
		for _, p := range s.Points {
			if p.Respondents > 0 {
				found = true
				if p.NPS == nil || *p.NPS != int64(*acme.NPS.NPS) || p.Respondents != uint64(acme.NPS.Respondents) {
					t.Errorf("metric nps %+v disagrees with the account's %+v", p, acme.NPS)
				}
			}
		}
	}
	if !found {
		t.Errorf("no acme NPS in %+v", rep.Series)
	}

	derived := accountDerived(t, js)
	t.Logf("account derived events: %v", derivedSummary(derived))
	last := map[string]map[string]any{}
	kinds := map[string]bool{}
	for _, e := range derived {
		var d map[string]any
		_ = json.Unmarshal(e.Data, &d)
		kinds[string(e.Kind())+"/"+e.Subject] = true
		if e.Kind() == touchpoint.KindAccountStageChanged {
			last[e.Subject] = d
		}
	}
	if last["acme"]["to"] != "loyal_customer" || last["initech"]["to"] != "new_customer" || last["globex"]["to"] != "prospect" {
		t.Errorf("last stage_changed per account %v", last)
	}
	for _, k := range []string{"account_dmu_gap/acme", "account_at_risk/acme", "account_at_risk/initech"} {
		if !kinds[k] {
			t.Errorf("no %s derived event in %v", k, derivedSummary(derived))
		}
	}
	if kinds["account_dmu_gap/initech"] || kinds["account_at_risk/globex"] {
		t.Errorf("derived events that should not be: %v", derivedSummary(derived))
	}

	// Every event again, without Nats-Msg-Id (new stream sequences): the
	// accounts must not change and no derived event may repeat.
	publishAll(t, js, events, false)
	drain(t, js, cfg)
	var again api.AccountJSON
	getJSON(t, hs.URL+"/v1/accounts/acme", 200, &again)
	if !reflect.DeepEqual(again, acme) {
		t.Errorf("a replay changed acme:\n%+v\n%+v", acme, again)
	}
	if n := len(accountDerived(t, js)); n != len(derived) {
		t.Errorf("a replay emitted %d account events, had %d", n, len(derived))
	}
}

func publishAll(t *testing.T, js jetstream.JetStream, events []touchpoint.Event, withID bool) {
	t.Helper()
	for i := range events {
		m, err := stream.NewFactMsg(&events[i])
		if err != nil {
			t.Fatal(err)
		}
		if !withID {
			delete(m.Header, jetstream.MsgIDHeader)
		}
		if _, err := js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
}

// drain waits until every partition consumer has acked everything and the
// outbox is empty.
func drain(t *testing.T, js jetstream.JetStream, cfg projector.Config) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		idle := true
		for p := 0; p < cfg.Stream.Partitions; p++ {
			c, err := js.Consumer(ctx, stream.TouchpointStream, fmt.Sprintf("%s-p%d", cfg.Projector.Durable, p))
			if err != nil {
				idle = false
				break
			}
			info, err := c.Info(ctx)
			if err != nil || info.NumPending > 0 || info.NumAckPending > 0 {
				idle = false
				break
			}
		}
		if idle {
			if s, err := js.Stream(ctx, cfg.Projector.OutboxStream); err == nil {
				if info, err := s.Info(ctx); err == nil && info.State.Msgs == 0 {
					return
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the projector did not drain within 60s")
}

func getJSON(t *testing.T, url string, status int, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("GET %s: %d %s, want %d", url, resp.StatusCode, body, status)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: %v in %s", url, err, body)
		}
	}
}

// accountDerived reads the account events of the DERIVED stream, checked
// against their JSON Schemas and unique by id.
func accountDerived(t *testing.T, js jetstream.JetStream) []touchpoint.Event {
	t.Helper()
	ctx := context.Background()
	set, err := touchpoint.Schemas()
	if err != nil {
		t.Fatal(err)
	}
	c, err := js.OrderedConsumer(ctx, stream.DerivedStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"customer.account_stage_changed.*", "customer.account_dmu_gap.*", "customer.account_at_risk.*"}})
	if err != nil {
		t.Fatal(err)
	}
	var out []touchpoint.Event
	seen := map[string]bool{}
	for {
		m, err := c.Next(jetstream.FetchMaxWait(500 * time.Millisecond))
		if err != nil {
			break
		}
		e, err := stream.DecodeMsg(m.Headers(), m.Data())
		if err != nil {
			t.Fatalf("derived event: %v", err)
		}
		if err := set.ValidateData(e.Type, e.Data); err != nil {
			t.Errorf("%s %s breaks its schema: %v: %s", e.Type, e.Subject, err, e.Data)
		}
		if seen[e.ID] {
			t.Errorf("derived event %s twice", e.ID)
		}
		seen[e.ID] = true
		out = append(out, e)
	}
	return out
}

func derivedSummary(evs []touchpoint.Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "%s/%s %s; ", e.Kind(), e.Subject, e.Data)
	}
	return b.String()
}
