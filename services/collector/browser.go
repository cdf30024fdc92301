package collector

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/klantreis/journey/pkg/touchpoint"
)

// VisitRequest is the body a web page posts to /v1/visits: small, so a
// page can send it with navigator.sendBeacon. The collector adds source
// (BrowserSource), type (visit), channel (web) and time (its own clock:
// browser clocks are not trusted).
type VisitRequest struct {
	// ID identifies the visit for deduplication; a page that retries sends
	// the same one. Optional: the collector generates one when absent.
	ID string `json:"id,omitempty"`
	// CustomerID is the CloudEvents subject (required, at most 128 bytes).
	CustomerID string `json:"customer_id"`
	URL        string `json:"url,omitempty"`
	Campaign   string `json:"campaign,omitempty"`
	SessionID  string `json:"session_id,omitempty"`
}

// handleVisit serves POST /v1/visits: no token, CORS allow-list, visit
// touchpoints for the configured source only.
func (c *Collector) handleVisit(w http.ResponseWriter, r *http.Request) {
	code := c.serveVisit(w, r)
	c.m.request("visits", code)
}

func (c *Collector) serveVisit(w http.ResponseWriter, r *http.Request) int {
	if c.s.BrowserSource == "" {
		return c.refuse(w, http.StatusNotFound, ReasonNotFound, "the browser endpoint is disabled (JOURNEY_COLLECTOR_BROWSER_SOURCE is empty)")
	}
	if !c.cors(w, r) {
		return c.refuse(w, http.StatusForbidden, ReasonForbidden, "origin not allowed")
	}
	if !c.admit() {
		return c.refuseBusy(w)
	}
	defer c.release()
	if msg := c.checkHeaders(r.Header); msg != "" {
		return c.refuse(w, http.StatusRequestHeaderFieldsTooLarge, ReasonHeaders, msg)
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		// text/plain is what navigator.sendBeacon sends with a string body,
		// and it spares the page a CORS preflight.
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && mt != "text/plain") {
			return c.refuse(w, http.StatusUnsupportedMediaType, ReasonMediaType, "send application/json or text/plain with a JSON body")
		}
	}
	if !c.browser.Allow() {
		retryAfter(w, 0)
		return c.refuse(w, http.StatusTooManyRequests, ReasonRateLimited, "too many visits; retry later")
	}
	var buf bytes.Buffer
	if code, msg := readBody(w, r, c.s.BrowserMaxBytes, &buf); code != 0 {
		if code == http.StatusRequestEntityTooLarge {
			return c.refuse(w, code, ReasonTooLarge, "the visit body is larger than the limit")
		}
		return c.refuse(w, code, ReasonMalformed, msg)
	}
	var v VisitRequest
	dec := json.NewDecoder(&buf)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return c.refuse(w, http.StatusBadRequest, ReasonMalformed, "the body must be a JSON object with customer_id and optional id, url, campaign, session_id: "+err.Error())
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return c.refuse(w, http.StatusBadRequest, ReasonMalformed, "the body must hold exactly one JSON object")
	}
	if v.ID == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		v.ID = hex.EncodeToString(b[:])
	}
	e, err := touchpoint.New(c.s.BrowserSource, v.ID, v.CustomerID, c.now(), touchpoint.Visit{
		Common: touchpoint.Common{Channel: "web"}, URL: v.URL, Campaign: v.Campaign, SessionID: v.SessionID,
	})
	if err == nil {
		_, err = touchpoint.Validate(&e, c.now())
	}
	if err != nil {
		var ve *touchpoint.ValidationError
		body := ErrorBody{Error: ReasonInvalid, Message: err.Error()}
		if errors.As(err, &ve) {
			for _, fe := range ve.Errors {
				fe.Field = visitField(fe.Field)
				body.Errors = append(body.Errors, fe)
			}
		}
		c.m.events.WithLabelValues(string(touchpoint.KindVisit), StatusRejected, ReasonInvalid).Inc()
		writeJSON(w, http.StatusBadRequest, body)
		return http.StatusBadRequest
	}
	if err := c.supp.Load().Check(e.Subject); err != nil {
		c.m.events.WithLabelValues(string(touchpoint.KindVisit), StatusRejected, ReasonErased).Inc()
		return c.refuse(w, http.StatusUnprocessableEntity, ReasonErased, err.Error())
	}
	return c.publishOne(w, &e, Result{ID: e.ID, Source: e.Source})
}

// visitField names a contract field as the visit body calls it.
func visitField(f string) string {
	if f == "subject" {
		return "customer_id"
	}
	return strings.TrimPrefix(f, "data.")
}

// handleVisitPreflight answers the CORS preflight of /v1/visits.
func (c *Collector) handleVisitPreflight(w http.ResponseWriter, r *http.Request) {
	code := http.StatusNoContent
	switch {
	case c.s.BrowserSource == "":
		code = c.refuse(w, http.StatusNotFound, ReasonNotFound, "the browser endpoint is disabled")
	case r.Header.Get("Origin") == "" || !c.cors(w, r):
		code = c.refuse(w, http.StatusForbidden, ReasonForbidden, "origin not allowed")
	default:
		h := w.Header()
		h.Set("Access-Control-Allow-Methods", "POST")
		h.Set("Access-Control-Allow-Headers", "Content-Type")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(code)
	}
	c.m.request("visits_options", code)
}

// cors checks the Origin against the allow-list and, when allowed, sets
// the response's CORS headers. A request without Origin is not from a
// browser page and passes: CORS protects browsers, not the endpoint.
func (c *Collector) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	w.Header().Add("Vary", "Origin")
	if origin == "" {
		return true
	}
	granted, ok := matchOrigin(c.s.BrowserOrigins, origin)
	if !ok {
		return false
	}
	w.Header().Set("Access-Control-Allow-Origin", granted)
	return true
}
