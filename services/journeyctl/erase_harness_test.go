package journeyctl_test

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/klantreis/journey/internal/freeport"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
)

// stack is a test's NATS server, ClickHouse database (env), and a writer
// and a projector running on them in this process.
type stack struct {
	*env
	t   *testing.T
	url string
	nc  *nats.Conn
	// writerOps and projectorOps serve the services' /metrics.
	writerOps, projectorOps string
}

// freeAddr is a loopback address for a child process to listen on
// (freeport: one no other process is handed meanwhile).
func freeAddr(t *testing.T) string {
	p, err := freeport.Pick()
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(p)
}

// metric returns a counter's value from an ops address's /metrics.
func (s *stack) metric(addr, name string) float64 {
	s.t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				s.t.Fatal(err)
			}
			return f
		}
	}
	s.t.Fatalf("%s has no %s", addr, name)
	return 0
}

func newStack(t *testing.T) *stack {
	t.Helper()
	e := newEnv(t)
	s := &stack{env: e, t: t, url: e.nats}
	nc, err := nats.Connect(s.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	s.nc = nc
	s.writerOps, s.projectorOps = freeAddr(t), freeAddr(t)
	s.pipelineAt(s.writerOps, s.projectorOps)
	return s
}

// customerEvents is one customer with every kind of record: a visit, a
// quote, an order, an open complaint (at risk), a survey answer with a
// comment, and an invalid survey (score 11) that is dead-lettered.
func customerEvents(t testing.TB, cust, prefix string, at time.Time) (valid []touchpoint.Event, invalid touchpoint.Event) {
	t.Helper()
	ps := []touchpoint.Typed{
		touchpoint.Visit{Common: touchpoint.Common{Channel: "web"}},
		touchpoint.Quote{QuoteID: "q1", Status: "sent", Amount: touchpoint.Amount{Cents: 1000}, Currency: "EUR"},
		touchpoint.Order{OrderID: "o1", Status: "placed", Amount: touchpoint.Amount{Cents: 1000}, Currency: "EUR"},
		touchpoint.Complaint{ComplaintID: "k1", Status: "opened", Category: "delivery", Text: "late again"},
		touchpoint.Survey{SurveyID: "nps", Score: 2, Comment: "my name is " + cust},
	}
	for i, p := range ps {
		e, err := touchpoint.New("test", fmt.Sprintf("%s-%d", prefix, i), cust, at.Add(time.Duration(i)*time.Minute), p)
		if err != nil {
			t.Fatal(err)
		}
		valid = append(valid, e)
	}
	bad, err := touchpoint.New("test", prefix+"-bad", cust, at.Add(time.Hour), touchpoint.Survey{SurveyID: "nps", Score: 5})
	if err != nil {
		t.Fatal(err)
	}
	bad.Data = []byte(`{"survey_id":"nps","score":11}`)
	return valid, bad
}

// eventually polls cond until it holds or limit passes.
func (s *stack) eventually(what string, limit time.Duration, cond func() (bool, string)) {
	s.t.Helper()
	deadline := time.Now().Add(limit)
	var last string
	for time.Now().Before(deadline) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("%s: not after %s (%s)", what, limit, last)
}

// settled waits until the customers' events, states, answers and dead
// letters are all in ClickHouse.
func (s *stack) settled(customers ...string) {
	s.t.Helper()
	for _, c := range customers {
		s.eventually("customer "+c+" in every table", time.Minute, func() (bool, string) {
			ev := s.count("SELECT count() FROM events WHERE customer_id = ?", c)
			st := s.count("SELECT count() FROM customer_state WHERE customer_id = ? AND responses = 1 AND open_complaints = 1", c)
			sr := s.count("SELECT count() FROM satisfaction_responses WHERE customer_id = ?", c)
			dead := s.count("SELECT count() FROM events_dead WHERE arrayElement(splitByChar('.', subject), -1) = ?", stream.CustomerKey(c))
			return ev == 5 && st >= 1 && sr == 1 && dead >= 1, fmt.Sprintf("events %d, states %d, responses %d, dead %d", ev, st, sr, dead)
		})
	}
}
