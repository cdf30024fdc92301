package touchpoint

import (
	"errors"
	"strings"
)

// Sentinels for errors.Is. Every error this package returns for bad input
// wraps exactly one of them.
var (
	// ErrInvalid: the event breaks the contract; a [*ValidationError] says where.
	ErrInvalid = errors.New("invalid event")
	// ErrUnknownType: the type is not one of journey's (see [KindOf]).
	ErrUnknownType = errors.New("unknown event type")
	// ErrMalformed: the bytes are not a CloudEvent at all (bad JSON, wrong shape).
	ErrMalformed = errors.New("malformed event")
)

// FieldError is one broken rule. Field is a CloudEvents attribute ("subject",
// "time") or a payload path ("data.score"); Rule is a short machine-readable
// name ("required", "maximum", "enum", ...).
type FieldError struct {
	Field string `json:"field"`
	Rule  string `json:"rule"`
	Msg   string `json:"message"`
}

func (e FieldError) Error() string { return e.Field + ": " + e.Msg }

// ValidationError lists every rule an event broke, in a stable order. It
// wraps [ErrInvalid], or [ErrUnknownType] when the type is unknown.
type ValidationError struct {
	Errors []FieldError
	kind   error
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString(e.kind.Error())
	for i, fe := range e.Errors {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(fe.Error())
	}
	return b.String()
}

func (e *ValidationError) Unwrap() error { return e.kind }

// First returns the first broken rule, for callers that report one.
func (e *ValidationError) First() FieldError {
	if len(e.Errors) == 0 {
		return FieldError{}
	}
	return e.Errors[0]
}

type errList struct{ errs []FieldError }

func (l *errList) add(field, rule, msg string) {
	l.errs = append(l.errs, FieldError{Field: field, Rule: rule, Msg: msg})
}

func (l *errList) err() error {
	if len(l.errs) == 0 {
		return nil
	}
	return &ValidationError{Errors: l.errs, kind: ErrInvalid}
}

func unknownType(t string) error {
	if t == "" {
		return &ValidationError{Errors: []FieldError{{Field: "type", Rule: "required", Msg: "is required"}}, kind: ErrInvalid}
	}
	return &ValidationError{Errors: []FieldError{{Field: "type", Rule: "enum", Msg: "must be one of journey's event types, got " + quote(t)}}, kind: ErrUnknownType}
}

func quote(s string) string {
	const max = 64
	if len(s) > max {
		s = s[:max] + "…"
	}
	return "\"" + strings.ToValidUTF8(s, "\uFFFD") + "\""
}
