// Package minimise applies data minimisation at ingest (GDPR art. 5(1)(c),
// docs/privacy.md): the free-text fields of touchpoints, where customers
// write whatever they like (names, phone numbers, health), can be masked
// or dropped before journey stores them, by configuration.
//
// The fields are a complaint's text and a survey's comment. Masking
// replaces the text with [Masked], so that a reader still sees that a text
// was given; dropping removes the field. Every other field, and the
// event's identity, stay as sent.
package minimise

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/klantreis/journey/pkg/touchpoint"
)

// Action is what happens to a free-text field.
type Action string

// The actions.
const (
	Keep Action = "keep" // store the text as sent (the default)
	Mask Action = "mask" // replace it with Masked
	Drop Action = "drop" // remove the field
)

// Masked is what a masked text becomes.
const Masked = "[masked]"

// ErrConfig marks an unknown action.
var ErrConfig = errors.New("minimise: bad config")

// Config says what to do with each free-text field. The zero value keeps
// everything. Services embed it under their prefix, e.g.
// JOURNEY_COLLECTOR_COMPLAINT_TEXT=mask.
type Config struct {
	// ComplaintText is the complaint's "text" (default keep).
	ComplaintText Action `envconfig:"COMPLAINT_TEXT" default:"keep"`
	// SurveyComment is the survey's "comment" (default keep).
	SurveyComment Action `envconfig:"SURVEY_COMMENT" default:"keep"`
}

// Validate refuses an action other than keep, mask or drop (empty is
// keep); prefix names the variables in the error (e.g. "JOURNEY_WRITER_").
func (c Config) Validate(prefix string) error {
	for name, a := range map[string]Action{"COMPLAINT_TEXT": c.ComplaintText, "SURVEY_COMMENT": c.SurveyComment} {
		switch a {
		case "", Keep, Mask, Drop:
		default:
			return fmt.Errorf("%w: %s%s must be keep, mask or drop, got %q", ErrConfig, prefix, name, a)
		}
	}
	return nil
}

// field is the free-text field of a kind and its action.
func (c Config) field(k touchpoint.Kind) (string, Action) {
	switch k {
	case touchpoint.KindComplaint:
		return "text", c.ComplaintText
	case touchpoint.KindSurvey:
		return "comment", c.SurveyComment
	}
	return "", Keep
}

// Active reports whether any field is masked or dropped.
func (c Config) Active() bool {
	return c.ComplaintText == Mask || c.ComplaintText == Drop || c.SurveyComment == Mask || c.SurveyComment == Drop
}

// Apply masks or drops the event's free-text field in place and reports
// whether it changed e.Data. An event without the field, of another kind,
// or already masked is left as it is, so Apply is idempotent: the
// collector and the writer may both apply it. The event should have been
// validated: data that is not a JSON object is an error.
func (c Config) Apply(e *touchpoint.Event) (bool, error) {
	name, a := c.field(e.Kind())
	if a != Mask && a != Drop {
		return false, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(e.Data, &obj); err != nil {
		return false, fmt.Errorf("minimise: data of %s is not a JSON object: %w", e.Type, err)
	}
	v, ok := obj[name]
	if !ok {
		return false, nil
	}
	switch a {
	case Drop:
		delete(obj, name)
	case Mask:
		if string(v) == `"`+Masked+`"` {
			return false, nil
		}
		obj[name] = json.RawMessage(`"` + Masked + `"`)
	}
	// An encoder without HTML escaping: the other fields keep their bytes
	// ("<" stays "<"), only the key order becomes sorted.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(obj); err != nil {
		return false, fmt.Errorf("minimise: %w", err)
	}
	e.Data = bytes.TrimRight(buf.Bytes(), "\n")
	return true, nil
}
