package collector

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/klantreis/journey/pkg/touchpoint"
)

// Reasons: the machine-readable "error" of a refusal.
const (
	ReasonInvalid      = "invalid"                // 400: the event breaks the contract
	ReasonUnknownType  = "unknown_type"           // 400: type is not one of journey's
	ReasonMalformed    = "malformed"              // 400: not a CloudEvent (bad JSON, wrong shape)
	ReasonUnauthorized = "unauthorized"           // 401: no or wrong token
	ReasonForbidden    = "forbidden"              // 403: token may not send for this source / origin not allowed
	ReasonTooLarge     = "too_large"              // 413: request, event or batch over its limit
	ReasonMediaType    = "unsupported_media_type" // 415
	ReasonHeaders      = "headers_too_large"      // 431: too many or too large headers
	ReasonRateLimited  = "rate_limited"           // 429
	ReasonUnavailable  = "unavailable"            // 503: NATS down or no ack in time
	ReasonBusy         = "busy"                   // 503: too many requests in flight
	ReasonNotFound     = "not_found"              // 404: no such endpoint, or the browser endpoint disabled
	ReasonMethod       = "method_not_allowed"     // 405: a route of the collector, another method
	ReasonErased       = "customer_erased"        // 422: the event's subject was erased (docs/privacy.md)
)

// Result is the outcome of one event. A single-event request answers with
// one Result; a batch lists one per event, in the order sent.
type Result struct {
	// Index of the event in the batch (batch mode only).
	Index *int `json:"index,omitempty"`
	// ID and Source of the event, when it had them.
	ID     string `json:"id,omitempty"`
	Source string `json:"source,omitempty"`
	// Status is "accepted" (stored now), "duplicate" (stored before, within
	// the duplicate window), "rejected" (refused, do not resend as is) or
	// "failed" (not stored for a transient reason: resend).
	Status string `json:"status"`
	// Duplicate is true when JetStream reported the event as a duplicate.
	Duplicate bool `json:"duplicate"`
	// Stream and Seq locate the stored event.
	Stream string `json:"stream,omitempty"`
	Seq    uint64 `json:"seq,omitempty"`
	// Code is the HTTP status this event alone would have had (refusals).
	Code int `json:"code,omitempty"`
	// Error is a Reason; Message a human-readable one; Errors every broken
	// rule with its attribute or field.
	Error   string                  `json:"error,omitempty"`
	Message string                  `json:"message,omitempty"`
	Errors  []touchpoint.FieldError `json:"errors,omitempty"`
}

// Outcomes of a Result.
const (
	StatusAccepted  = "accepted"
	StatusDuplicate = "duplicate"
	StatusRejected  = "rejected"
	StatusFailed    = "failed"
)

// BatchResponse is the body of a batch answer.
type BatchResponse struct {
	Accepted   int      `json:"accepted"`
	Duplicates int      `json:"duplicates"`
	Rejected   int      `json:"rejected"`
	Failed     int      `json:"failed"`
	Results    []Result `json:"results"`
}

// ErrorBody is the body of a refusal of the whole request.
type ErrorBody struct {
	Error   string                  `json:"error"`
	Message string                  `json:"message"`
	Errors  []touchpoint.FieldError `json:"errors,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

func retryAfter(w http.ResponseWriter, d time.Duration) {
	secs := int((d + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
}
