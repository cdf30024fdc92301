package collector_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/klantreis/journey/pkg/minimise"
	"github.com/klantreis/journey/services/collector"
)

// With JOURNEY_COLLECTOR_MINIMISE_SURVEY_COMMENT=mask and _COMPLAINT_TEXT=drop
// the free text never reaches the stream: the event is accepted as sent and
// published with the comment masked and the text dropped, every other field
// as it was. A survey without a comment is published unchanged.
func TestCollectorMinimisesFreeTextBeforePublishing(t *testing.T) {
	e := newEnv(t, func(s *collector.Settings) {
		s.Minimise = minimise.Config{SurveyComment: minimise.Mask, ComplaintText: minimise.Drop}
	})
	url := e.url + "/v1/events"
	now := time.Now().UTC().Format(time.RFC3339Nano)
	ev := func(id, typ, data string) string {
		return fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"survey-tool","type":%q,"subject":"c-min","time":%q,"data":%s}`, id, typ, now, data)
	}
	batch := "[" + strings.Join([]string{
		ev("m-s1", "io.klantreis.touchpoint.survey.v1", `{"survey_id":"nps","score":3,"comment":"Jan de Vries, 0612345678"}`),
		ev("m-k1", "io.klantreis.touchpoint.complaint.v1", `{"complaint_id":"k1","status":"opened","category":"delivery","text":"I live at Dorpstraat 1"}`),
		ev("m-s2", "io.klantreis.touchpoint.survey.v1", `{"survey_id":"nps","score":9}`),
	}, ",") + "]"
	resp, body := post(t, url, tokenSurvey, map[string]string{"Content-Type": "application/cloudevents-batch+json"}, batch)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	got := map[string]string{}
	for _, s := range e.storedEvents(t) {
		got[s.Event.ID] = string(s.Event.Data)
	}
	t.Logf("published: %v", got)
	if d := got["m-s1"]; strings.Contains(d, "0612345678") || !strings.Contains(d, `"comment":"[masked]"`) || !strings.Contains(d, `"score":3`) {
		t.Errorf("survey published as %s, want the comment masked", d)
	}
	if d := got["m-k1"]; strings.Contains(d, "Dorpstraat") || strings.Contains(d, `"text"`) || !strings.Contains(d, `"category":"delivery"`) {
		t.Errorf("complaint published as %s, want the text dropped", d)
	}
	if d := got["m-s2"]; d != `{"survey_id":"nps","score":9}` {
		t.Errorf("a survey without comment was changed: %s", d)
	}
}

func TestCollectorRefusesAnUnknownMinimiseAction(t *testing.T) {
	s := collector.DefaultSettings()
	s.Minimise.ComplaintText = "hide"
	err := s.Validate()
	if err == nil || !strings.Contains(err.Error(), `JOURNEY_COLLECTOR_MINIMISE_COMPLAINT_TEXT must be keep, mask or drop, got "hide"`) {
		t.Fatalf("%v", err)
	}
}
