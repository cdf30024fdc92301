package collector_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/klantreis/journey/pkg/touchpoint"
)

// Customer ids are never silently changed: each case measured through the
// collector gets its status and message, in structured, batch and binary
// mode. Refused ids are not in the stream; accepted ones are, byte for
// byte.
func TestCustomerIDsRoundTripOrAreRefused(t *testing.T) {
	e := newEnv(t, nil)
	url := e.url + "/v1/events"
	for _, tc := range []struct {
		name    string
		json    string // the subject as JSON string text
		binary  string // the same as a percent-encoded ce-subject header
		stored  string // "" refused, else the id stored
		message string
		binMsg  string // the binary mode's message, when it differs
	}{
		{"plain", `cust-1`, `cust-1`, "cust-1", "", ""},
		{"non-ASCII", `klant-\u00e9`, `klant-%C3%A9`, "klant-é", "", ""},
		{"a space", `bad-nl x`, `bad-nl%20x`, "bad-nl x", "", ""},
		{"newline", `bad-nl\nx`, `bad-nl%0Ax`, "", "subject: must not contain control characters, got U+000A at byte 6", ""},
		{"carriage return", `bad-cr\rx`, `bad-cr%0Dx`, "", "got U+000D at byte 6", ""},
		{"NUL", `a\u0000b`, `a%00b`, "", "got U+0000 at byte 1", ""},
		{"tab", `a\tb`, `a%09b`, "", "got U+0009 at byte 1", ""},
		{"ESC", `a\u001bb`, `a%1Bb`, "", "got U+001B at byte 1", ""},
		{"DEL", `a\u007fb`, `a%7Fb`, "", "got U+007F at byte 1", ""},
		{"lone surrogate", `\ud800`, `%ED%A0%80`, "", "lone UTF-16 surrogate escape encodes no character: \\\\ud800", "subject: must be valid UTF-8"},
		{"lone surrogate and a letter", `\ud800\u0041`, ``, "", "lone UTF-16 surrogate escape encodes no character: \\\\ud800", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := uid("ids")
			body := fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"crm/ids","type":%q,"subject":"%s","time":%q,"data":{"channel":"web"}}`,
				id, touchpoint.TypeVisit, tc.json, time.Now().UTC().Format(time.RFC3339Nano))
			check := func(mode string, resp *http.Response, got []byte) {
				t.Helper()
				message := tc.message
				if mode == "binary" && tc.binMsg != "" {
					message = tc.binMsg
				}
				if tc.stored != "" {
					if resp.StatusCode != http.StatusAccepted {
						t.Fatalf("%s: %d %s, want 202", mode, resp.StatusCode, got)
					}
					return
				}
				if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(got), message) {
					t.Fatalf("%s: %d %s, want 400 saying %q", mode, resp.StatusCode, got, message)
				}
				t.Logf("%s: %d %s", mode, resp.StatusCode, got)
			}
			resp, got := post(t, url, tokenCRM, map[string]string{"Content-Type": "application/cloudevents+json"}, body)
			check("structured", resp, got)
			batchID := id + "-b"
			resp, got = post(t, url, tokenCRM, map[string]string{"Content-Type": "application/cloudevents-batch+json"}, "["+strings.Replace(body, id, batchID, 1)+"]")
			if tc.stored == "" && resp.StatusCode == http.StatusAccepted {
				t.Fatalf("batch: %d %s, want the event refused", resp.StatusCode, got)
			}
			if tc.stored == "" && !strings.Contains(string(got), tc.message) {
				t.Fatalf("batch: %d %s, want it to say %q", resp.StatusCode, got, tc.message)
			}
			if tc.binary != "" {
				resp, got = post(t, url, tokenCRM, map[string]string{
					"Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": id + "-h", "ce-source": "crm/ids",
					"ce-type": touchpoint.TypeVisit, "ce-subject": tc.binary, "ce-time": time.Now().UTC().Format(time.RFC3339),
				}, `{"channel":"web"}`)
				check("binary", resp, got)
			}
			var subjects []string
			for _, s := range e.storedEvents(t) {
				if strings.HasPrefix(s.Event.ID, id) {
					subjects = append(subjects, s.Event.Subject)
				}
			}
			if tc.stored == "" && len(subjects) != 0 {
				t.Fatalf("refused id stored as %q", subjects)
			}
			for _, s := range subjects {
				if s != tc.stored {
					t.Fatalf("stored as %q, sent %q", s, tc.stored)
				}
			}
		})
	}
}

// An unknown path or method gets the JSON error body of every other
// refusal, not the mux's text/plain.
func TestUnknownPathsAndMethodsAnswerJSON(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		method, path string
		code         int
		reason       string
	}{
		{http.MethodGet, "/v2/events", http.StatusNotFound, `"error":"not_found"`},
		{http.MethodPost, "/nope", http.StatusNotFound, `no such endpoint: /nope`},
		{http.MethodGet, "/v1/events", http.StatusMethodNotAllowed, `GET is not served on /v1/events; use POST, OPTIONS`},
	} {
		req, _ := http.NewRequest(tc.method, e.url+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		if resp.StatusCode != tc.code || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/") || !strings.Contains(body, tc.reason) {
			t.Fatalf("%s %s: %d %s %s, want %d saying %s", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), body, tc.code, tc.reason)
		}
	}
}
