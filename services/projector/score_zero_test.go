package projector_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/ops"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/services/api"
)

// TestScoreZeroEndToEnd: a survey answered with 0 (the lowest score, a
// detractor) travels NATS -> projector -> ClickHouse -> API as 0, not as
// null; a customer who never answered is served null.
func TestScoreZeroEndToEnd(t *testing.T) {
	br := freshStreams(t)
	now := time.Now().UTC().Truncate(time.Second)
	var events []touchpoint.Event
	for i, p := range []struct {
		cust string
		p    touchpoint.Typed
	}{
		{"zero", touchpoint.Visit{Common: touchpoint.Common{Channel: "web"}}},
		{"zero", touchpoint.Survey{SurveyID: "nps", Score: 0}},
		{"ten", touchpoint.Survey{SurveyID: "nps", Score: 10}},
		{"silent", touchpoint.Visit{Common: touchpoint.Common{Channel: "web"}}},
	} {
		e, err := touchpoint.New("test", "ev"+string(rune('a'+i)), p.cust, now.Add(time.Duration(i-10)*time.Minute), p.p)
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
	}
	publish(t, br.js, events)
	cfg := br.config(warehousetest.Config(t))
	start(t, cfg)
	waitDrained(t, br.js, cfg.Projector.Durable, time.Minute)
	waitWarehouse(t, br.js, cfg, time.Minute)

	db := openDB(t, cfg.ClickHouse)
	srv, err := api.NewServer(api.Settings{}, ops.NewHealth(), db.Ping, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	srv.SetStore(db)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)

	for _, want := range []struct {
		cust     string
		score    *float64
		category string
	}{{"zero", ptrF(0), "detractor"}, {"ten", ptrF(10), "promoter"}, {"silent", nil, ""}} {
		var c struct {
			Satisfaction struct {
				Score    *float64 `json:"score"`
				Category string   `json:"category"`
			} `json:"satisfaction"`
		}
		res, err := http.Get(hs.URL + "/v1/customers/" + url.PathEscape(want.cust))
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", want.cust, res.StatusCode)
		}
		err = json.NewDecoder(res.Body).Decode(&c)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		got := c.Satisfaction
		if (got.Score == nil) != (want.score == nil) || (got.Score != nil && *got.Score != *want.score) || got.Category != want.category {
			t.Errorf("%s: satisfaction score %v category %q, want %v %q", want.cust, fmtF(got.Score), got.Category, fmtF(want.score), want.category)
		}
	}
	var nulls uint64
	if err := db.Conn.QueryRow(context.Background(), "SELECT count() FROM customer_state WHERE customer_id = 'zero' AND isNull(nps_score)").Scan(&nulls); err != nil {
		t.Fatal(err)
	}
	if nulls != 0 {
		t.Errorf("customer_state holds %d rows with nps_score NULL for the customer who answered 0", nulls)
	}
}

func ptrF(f float64) *float64 { return &f }

func fmtF(f *float64) any {
	if f == nil {
		return "null"
	}
	return *f
}
