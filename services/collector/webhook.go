package collector

import (
	"net/http"
	"strconv"
)

// handleWebhookHandshake answers the CloudEvents webhook abuse-protection
// handshake (OPTIONS with WebHook-Request-Origin): it grants allowed
// origins and states the rate a sender may use. It answers synchronously
// and never calls a WebHook-Request-Callback URL: fetching a URL a stranger
// names would let anyone aim the collector at internal addresses.
func (c *Collector) handleWebhookHandshake(w http.ResponseWriter, r *http.Request) {
	code := c.webhookHandshake(w, r)
	c.m.request("events_options", code)
}

func (c *Collector) webhookHandshake(w http.ResponseWriter, r *http.Request) int {
	w.Header().Set("Allow", "POST, OPTIONS")
	origin := r.Header.Get("WebHook-Request-Origin")
	if origin == "" {
		// A plain OPTIONS: say what the endpoint allows.
		w.WriteHeader(http.StatusNoContent)
		return http.StatusNoContent
	}
	granted, ok := matchOrigin(c.s.WebhookOrigins, origin)
	if !ok {
		return c.refuse(w, http.StatusForbidden, ReasonForbidden, "origin "+strconv.Quote(trunc(origin))+" may not deliver webhooks here")
	}
	w.Header().Set("WebHook-Allowed-Origin", granted)
	if c.s.Rate > 0 {
		perMinute := int(c.s.Rate * 60)
		w.Header().Set("WebHook-Allowed-Rate", strconv.Itoa(perMinute))
	} else {
		w.Header().Set("WebHook-Allowed-Rate", "*")
	}
	w.WriteHeader(http.StatusOK)
	return http.StatusOK
}

// matchOrigin reports whether origin is in the allow-list (exact match, or
// "*" for any) and what to grant: the origin itself, or "*".
func matchOrigin(allowed []string, origin string) (string, bool) {
	for _, a := range allowed {
		switch a {
		case "*":
			return "*", true
		case origin:
			return origin, true
		}
	}
	return "", false
}
