package touchpoint_test

import (
	"encoding/json"
	"io/fs"
	"path"
	"testing"
	"time"

	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/schemas"
)

type invalidExample struct {
	Description string          `json:"description"`
	Event       json.RawMessage `json:"event"`
	Field       string          `json:"field"`
	Rule        string          `json:"rule"`
}

// TestInvalidExamples: every example in schemas/testdata/invalid is
// rejected by the published JSON Schema and by Validate, which names the
// expected field and rule.
func TestInvalidExamples(t *testing.T) {
	t.Parallel()
	set, err := touchpoint.Schemas()
	if err != nil {
		t.Fatal(err)
	}
	files, err := fs.Glob(schemas.Testdata, "testdata/invalid/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("only %d invalid examples found", len(files))
	}
	for _, f := range files {
		t.Run(path.Base(f), func(t *testing.T) {
			b, err := fs.ReadFile(schemas.Testdata, f)
			if err != nil {
				t.Fatal(err)
			}
			var ex invalidExample
			if err := json.Unmarshal(b, &ex); err != nil {
				t.Fatal(err)
			}
			if ex.Field == "" || ex.Rule == "" {
				t.Fatal("example lacks field or rule")
			}
			e, err := touchpoint.UnmarshalStructured(ex.Event)
			if err != nil {
				t.Fatalf("the example's envelope must decode: %v", err)
			}
			if err := set.ValidateData(e.Type, e.Data); err == nil {
				t.Fatalf("JSON Schema accepts %s", e.Data)
			}
			_, err = touchpoint.Validate(&e, e.Time.Add(time.Hour))
			assertFieldError(t, err, ex.Field, ex.Rule)
		})
	}
}

// TestValidExamplesPassBoth is the differential counterpart: events that
// Validate accepts are accepted by the schema, for every fact kind.
func TestValidExamplesPassBoth(t *testing.T) {
	t.Parallel()
	set, err := touchpoint.Schemas()
	if err != nil {
		t.Fatal(err)
	}
	for typ, data := range map[string]string{
		touchpoint.TypeVisit: validVisit, touchpoint.TypeQuote: validQuote, touchpoint.TypeOrder: validOrder,
		touchpoint.TypeComplaint: validComplaint, touchpoint.TypeSurvey: validSurvey, touchpoint.TypeOffboarded: validOffboarded,
	} {
		e := ev(typ, data)
		// Through the structured codec, as a consumer sees it.
		e2, err := touchpoint.UnmarshalStructured(e.MarshalStructured())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := touchpoint.Validate(&e2, now); err != nil {
			t.Errorf("%s: Validate: %v", typ, err)
		}
		if err := set.ValidateData(typ, e2.Data); err != nil {
			t.Errorf("%s: schema: %v", typ, err)
		}
	}
}

// TestSchemasCoverEveryType: each type has a compiled schema and a
// dataschema URI that names the file.
func TestSchemasCoverEveryType(t *testing.T) {
	t.Parallel()
	set, err := touchpoint.Schemas()
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{touchpoint.TypeVisit, touchpoint.TypeQuote, touchpoint.TypeOrder, touchpoint.TypeComplaint,
		touchpoint.TypeSurvey, touchpoint.TypeOffboarded, touchpoint.TypeStageChanged, touchpoint.TypeSatisfactionChanged, touchpoint.TypeAtRisk,
		touchpoint.TypeAccountStageChanged, touchpoint.TypeAccountDMUGap, touchpoint.TypeAccountAtRisk} {
		uri := touchpoint.SchemaURI(typ)
		if uri == "" {
			t.Errorf("%s has no schema URI", typ)
			continue
		}
		b, err := fs.ReadFile(schemas.Events, "events/"+path.Base(uri))
		if err != nil {
			t.Errorf("%s: %v", typ, err)
			continue
		}
		var doc struct {
			ID    string `json:"$id"`
			Title string `json:"title"`
		}
		if err := json.Unmarshal(b, &doc); err != nil || doc.ID != uri || doc.Title != typ {
			t.Errorf("%s: schema $id %q title %q (%v)", typ, doc.ID, doc.Title, err)
		}
		// {} is never valid JSON for a type with a required property, but
		// every schema must at least reject a non-object.
		if err := set.ValidateData(typ, []byte(`[]`)); err == nil {
			t.Errorf("%s: schema accepts an array", typ)
		}
	}
	if err := set.ValidateData("com.example.other.v1", []byte(`{}`)); err == nil {
		t.Error("unknown type accepted by the schema set")
	}
}
