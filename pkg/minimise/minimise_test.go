package minimise_test

import (
	"errors"
	"testing"
	"time"

	"github.com/klantreis/journey/pkg/minimise"
	"github.com/klantreis/journey/pkg/touchpoint"
)

func ev(t *testing.T, p touchpoint.Typed) touchpoint.Event {
	t.Helper()
	e, err := touchpoint.New("src", "id", "c", time.Now(), p)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestApply(t *testing.T) {
	t.Parallel()
	complaint := touchpoint.Complaint{ComplaintID: "k", Status: "opened", Category: "delivery", Text: "my address is Main St 1"}
	survey := touchpoint.Survey{SurveyID: "nps", Score: 4, Comment: "call me"}
	cases := []struct {
		name    string
		cfg     minimise.Config
		p       touchpoint.Typed
		changed bool
		want    string
	}{
		{"keep by default", minimise.Config{}, complaint, false, `{"complaint_id":"k","status":"opened","category":"delivery","text":"my address is Main St 1"}`},
		{"mask complaint text", minimise.Config{ComplaintText: minimise.Mask}, complaint, true, `{"category":"delivery","complaint_id":"k","status":"opened","text":"[masked]"}`},
		{"drop complaint text", minimise.Config{ComplaintText: minimise.Drop}, complaint, true, `{"category":"delivery","complaint_id":"k","status":"opened"}`},
		{"survey setting leaves complaints", minimise.Config{SurveyComment: minimise.Drop}, complaint, false, `{"complaint_id":"k","status":"opened","category":"delivery","text":"my address is Main St 1"}`},
		{"mask survey comment", minimise.Config{SurveyComment: minimise.Mask}, survey, true, `{"comment":"[masked]","score":4,"survey_id":"nps"}`},
		{"drop survey comment", minimise.Config{SurveyComment: minimise.Drop}, survey, true, `{"score":4,"survey_id":"nps"}`},
		{"no comment to drop", minimise.Config{SurveyComment: minimise.Drop}, touchpoint.Survey{SurveyID: "nps", Score: 4}, false, `{"survey_id":"nps","score":4}`},
		{"other kinds untouched", minimise.Config{ComplaintText: minimise.Drop, SurveyComment: minimise.Drop}, touchpoint.Visit{Common: touchpoint.Common{Channel: "web"}}, false, `{"channel":"web"}`},
	}
	for _, c := range cases {
		e := ev(t, c.p)
		changed, err := c.cfg.Apply(&e)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if changed != c.changed || string(e.Data) != c.want {
			t.Errorf("%s: changed %v, data %s; want %v, %s", c.name, changed, e.Data, c.changed, c.want)
		}
		if _, err := touchpoint.Validate(&e, time.Now()); err != nil {
			t.Errorf("%s: the minimised event is no longer valid: %v", c.name, err)
		}
		// Idempotent: the collector and the writer may both apply it.
		if again, _ := c.cfg.Apply(&e); again {
			t.Errorf("%s: a second Apply changed %s", c.name, e.Data)
		}
	}
}

func TestValidateNamesTheVariable(t *testing.T) {
	t.Parallel()
	err := minimise.Config{SurveyComment: "hide"}.Validate("JOURNEY_WRITER_MINIMISE_")
	if !errors.Is(err, minimise.ErrConfig) || err.Error() != `minimise: bad config: JOURNEY_WRITER_MINIMISE_SURVEY_COMMENT must be keep, mask or drop, got "hide"` {
		t.Fatalf("%v", err)
	}
	if err := (minimise.Config{ComplaintText: minimise.Drop, SurveyComment: minimise.Keep}).Validate("X_"); err != nil {
		t.Fatal(err)
	}
}
