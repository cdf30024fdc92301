package collector_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/services/collector"
)

// The fuzz targets drive the real handler on the real NATS server. Beyond
// "never panics" they check the promises: only the documented status
// codes, always a JSON body, and a 202 only for events that are in the
// stream under the (source, id) they claim.

var okCodes = map[int]bool{202: true, 400: true, 403: true, 413: true, 415: true, 431: true}

func fuzzRequest(t *testing.T, e *env, req *http.Request) (int, []byte) {
	req.Header.Set("Authorization", "Bearer "+tokenCRM)
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	if !okCodes[rec.Code] {
		t.Fatalf("status %d: %s", rec.Code, rec.Body.Bytes())
	}
	if !json.Valid(rec.Body.Bytes()) {
		t.Fatalf("status %d with a body that is not JSON: %q", rec.Code, rec.Body.Bytes())
	}
	return rec.Code, rec.Body.Bytes()
}

// assertStored checks that an accepted result names a stored message.
func assertStored(t *testing.T, e *env, r collector.Result) {
	t.Helper()
	if (r.Status != collector.StatusAccepted && r.Status != collector.StatusDuplicate) || r.Seq == 0 {
		t.Fatalf("202 result that is not stored: %+v", r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, stream.TouchpointStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(ctx, r.Seq)
	if err != nil {
		t.Fatalf("202 for seq %d, which is not in the stream: %v", r.Seq, err)
	}
	// A correction's id is MsgID + "-r<revision>" (stream.NewMsg).
	if got, want := m.Header.Get("Nats-Msg-Id"), stream.MsgID(r.Source, r.ID); got != want && !strings.HasPrefix(got, want+"-r") {
		t.Fatalf("seq %d holds msg id %s, the result claims %s", r.Seq, got, want)
	}
}

func checkSingle(t *testing.T, e *env, code int, body []byte) {
	if code != http.StatusAccepted {
		return
	}
	var r collector.Result
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	assertStored(t, e, r)
}

func FuzzStructured(f *testing.F) {
	now := time.Now().UTC().Format(time.RFC3339)
	f.Add([]byte(structuredOrder("crm/f", "seed-1", "c-1")))
	f.Add([]byte(`{"specversion":"1.0","id":"s2","source":"crm/f","type":"io.klantreis.touchpoint.survey.v1","subject":"c","time":"` + now + `","data":{"survey_id":"s","score":7}}`))
	f.Add([]byte(`{"specversion":"1.0","id":"s3","source":"crm/f","type":"io.klantreis.touchpoint.visit.v1","subject":"c","time":"` + now + `","data_base64":"eyJjaGFubmVsIjoid2ViIn0="}`))
	f.Add([]byte(`{"specversion":"1.0","id":"s4","source":"other","type":"x"}`))
	f.Add([]byte(`{"specversion":1,"data":[1,2],"ext":{"a":1}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{`))
	f.Add([]byte{0xff, 0xfe, '{', '}'})
	e := newEnv(f, nil)
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/v1/events", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/cloudevents+json")
		code, resp := fuzzRequest(t, e, req)
		checkSingle(t, e, code, resp)
	})
}

func FuzzBinary(f *testing.F) {
	now := time.Now().UTC().Format(time.RFC3339)
	f.Add("1.0", "b-1", "crm/f", touchpoint.TypeVisit, "c%2F1", now, "trace%25x", "application/json", []byte(`{"channel":"web"}`))
	f.Add("1.0", "b-2", "crm/f", touchpoint.TypeOrder, "c", now, "", "application/json; charset=utf-8", []byte(`{"order_id":"o","status":"placed","amount":1.5,"currency":"EUR"}`))
	f.Add("1.0", "", "", "", "", "", "%zz", "", []byte(``))
	f.Add("0.3", "b-3", "elsewhere", touchpoint.TypeVisit, "c", "yesterday", "x", "text/plain", []byte(`hi`))
	f.Add("1.0", "b-4", "crm/f", touchpoint.TypeSurvey, "é", now, "50% off", "", []byte(`{"survey_id":"s","score":10.0}`))
	e := newEnv(f, nil)
	f.Fuzz(func(t *testing.T, spec, id, source, typ, subject, at, ext, contentType string, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/v1/events", bytes.NewReader(body))
		h := req.Header
		h["Ce-Specversion"] = []string{spec}
		h["Ce-Id"] = []string{id}
		h["Ce-Source"] = []string{source}
		h["Ce-Type"] = []string{typ}
		h["Ce-Subject"] = []string{subject}
		h["Ce-Time"] = []string{at}
		h["Ce-Fuzzext"] = []string{ext}
		if contentType != "" {
			h["Content-Type"] = []string{contentType}
		}
		code, resp := fuzzRequest(t, e, req)
		checkSingle(t, e, code, resp)
	})
}

func FuzzBatch(f *testing.F) {
	f.Add([]byte(`[` + structuredOrder("crm/f", "bb-1", "c-1") + `,` + structuredOrder("crm/f", "bb-1", "c-1") + `]`))
	f.Add([]byte(`[` + structuredOrder("crm/f", "bb-2", "c-1") + `,{"specversion":"1.0"},null,"x",` + structuredOrder("nope", "bb-3", "c") + `]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`[[[]]]`))
	f.Add([]byte(`{"not":"an array"}`))
	f.Add([]byte(`[{"specversion":"1.0","id":"` + string(make([]byte, 300)) + `"}]`))
	e := newEnv(f, func(s *collector.Settings) { s.MaxBatchEvents = 50; s.Burst = 50 })
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/v1/events", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/cloudevents-batch+json")
		code, resp := fuzzRequest(t, e, req)
		var br collector.BatchResponse
		if err := json.Unmarshal(resp, &br); err != nil || br.Results == nil {
			return // a refusal of the whole request (ErrorBody)
		}
		if br.Accepted+br.Duplicates+br.Rejected+br.Failed != len(br.Results) {
			t.Fatalf("counts do not add up: %s", resp)
		}
		stored := br.Accepted + br.Duplicates
		if (code == http.StatusAccepted) != (stored > 0 || len(br.Results) == 0) {
			t.Fatalf("status %d with %d stored of %d: %s", code, stored, len(br.Results), resp)
		}
		for i, r := range br.Results {
			if r.Index == nil || *r.Index != i {
				t.Fatalf("result %d has index %v", i, r.Index)
			}
			if r.Status == collector.StatusAccepted || r.Status == collector.StatusDuplicate {
				assertStored(t, e, r)
			}
		}
	})
}
