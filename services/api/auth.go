package api

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Scope is what a token may do. admin includes read.
type Scope string

const (
	// ScopeRead reads: /v1 GETs and the dashboard.
	ScopeRead Scope = "read"
	// ScopeAdmin may also change and erase (the admin endpoints).
	ScopeAdmin Scope = "admin"
)

// ErrConfig marks an unusable API setting.
var ErrConfig = errors.New("api: bad config")

// token is one configured token, kept as its hash only.
type token struct {
	sum   [sha256.Size]byte
	scope Scope
}

// parseTokens reads JOURNEY_API_TOKENS entries and the lines of
// JOURNEY_API_TOKENS_FILE: "token" (read scope), "token=read" or
// "token=admin". Blank lines and lines starting with # are skipped.
func parseTokens(entries []string, file string) ([]token, error) {
	all := append([]string(nil), entries...)
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("%w: JOURNEY_API_TOKENS_FILE: %w", ErrConfig, err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				all = append(all, line)
			}
		}
	}
	var out []token
	for i, e := range all {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		tok, scope, hasScope := strings.Cut(e, "=")
		if !hasScope {
			scope = string(ScopeRead)
		}
		if tok == "" {
			return nil, fmt.Errorf("%w: API token %d is empty before its scope", ErrConfig, i+1)
		}
		if s := Scope(scope); s != ScopeRead && s != ScopeAdmin {
			return nil, fmt.Errorf("%w: API token %d has scope %q; want read or admin", ErrConfig, i+1, scope)
		}
		out = append(out, token{sum: sha256.Sum256([]byte(tok)), scope: Scope(scope)})
	}
	return out, nil
}

// grants reports whether a token of scope have may do what want needs.
func grants(have, want Scope) bool { return have == ScopeAdmin || have == want }

// sessionCookie is the dashboard's login: "<scope>.<expiry>.<mac>", the
// MAC over scope, expiry and the token's hash under a key of this process.
// The token itself never sits in the browser; a restart, or removing the
// token from the configuration, ends the session.
const sessionCookie = "journey_session"

// sessionTTL is how long a dashboard login lasts.
const sessionTTL = 12 * time.Hour

type sessions struct {
	key []byte
	now func() time.Time
}

func newSessions(now func() time.Time) sessions {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return sessions{key: k, now: now}
}

func (ss sessions) mac(scope Scope, exp int64, sum [sha256.Size]byte) []byte {
	m := hmac.New(sha256.New, ss.key)
	m.Write([]byte(string(scope) + "." + strconv.FormatInt(exp, 10) + "."))
	m.Write(sum[:])
	return m.Sum(nil)
}

func (ss sessions) issue(t token) *http.Cookie {
	exp := ss.now().Add(sessionTTL).Unix()
	v := string(t.scope) + "." + strconv.FormatInt(exp, 10) + "." + base64.RawURLEncoding.EncodeToString(ss.mac(t.scope, exp, t.sum))
	return &http.Cookie{Name: sessionCookie, Value: v, Path: "/", MaxAge: int(sessionTTL / time.Second), HttpOnly: true, SameSite: http.SameSiteLaxMode}
}

// verify returns the scope of a valid, unexpired session cookie.
func (ss sessions) verify(value string, tokens []token) (Scope, bool) {
	parts := strings.SplitN(value, ".", 3)
	if len(parts) != 3 {
		return "", false
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || ss.now().Unix() >= exp {
		return "", false
	}
	got, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return "", false
	}
	scope := Scope(parts[0])
	ok := 0
	for _, t := range tokens {
		if t.scope == scope {
			ok |= subtle.ConstantTimeCompare(got, ss.mac(scope, exp, t.sum))
		}
	}
	return scope, ok == 1
}

// scopeOf is the scope a request carries: a bearer token, a token as the
// password of Basic auth, or (safe methods only, so a cross-site form
// cannot use it) the dashboard's session cookie.
func (s *Server) scopeOf(r *http.Request) (Scope, bool) {
	if tok := tokenOf(r); tok != "" {
		return s.lookup(tok)
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		if c, err := r.Cookie(sessionCookie); err == nil {
			return s.sessions.verify(c.Value, s.tokens)
		}
	}
	return "", false
}

// tokenOf is the request's token: a bearer token, or the password of
// HTTP Basic auth; empty when it has neither.
func tokenOf(r *http.Request) string {
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	if _, pw, ok := r.BasicAuth(); ok {
		return pw
	}
	return ""
}

// lookup finds a token's scope, comparing hashes in constant time.
func (s *Server) lookup(tok string) (Scope, bool) {
	sum := sha256.Sum256([]byte(tok))
	var found Scope
	for _, t := range s.tokens {
		if subtle.ConstantTimeCompare(sum[:], t.sum[:]) == 1 {
			found = t.scope
		}
	}
	return found, found != ""
}

func (s *Server) tokenFor(tok string) (token, bool) {
	sum := sha256.Sum256([]byte(tok))
	for _, t := range s.tokens {
		if subtle.ConstantTimeCompare(sum[:], t.sum[:]) == 1 {
			return t, true
		}
	}
	return token{}, false
}

// safeNext is where to go after the login: a path on this server only.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

// login serves GET /login (the form, or ?token= once from a link: the
// cookie is set and the token leaves the address bar) and POST /login.
func (d *dashboard) login(w http.ResponseWriter, r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return d.loginPage(w, r, http.StatusBadRequest, "the form could not be read")
	}
	next := safeNext(r.Form.Get("next"))
	tok := r.Form.Get("token")
	if tok == "" {
		if r.Method == http.MethodPost {
			return d.loginPage(w, r, http.StatusUnauthorized, "enter a token")
		}
		return d.loginPage(w, r, http.StatusOK, "")
	}
	t, ok := d.s.tokenFor(tok)
	if !ok {
		return d.loginPage(w, r, http.StatusUnauthorized, "that token is not valid")
	}
	c := d.s.sessions.issue(t)
	c.Secure = r.TLS != nil
	http.SetCookie(w, c)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, next, http.StatusSeeOther)
	return nil
}

func (d *dashboard) loginPage(w http.ResponseWriter, r *http.Request, status int, msg string) error {
	w.Header().Set("Referrer-Policy", "no-referrer")
	return d.renderStatus(w, status, "login.html", map[string]any{"Title": "Log in", "Next": safeNext(r.Form.Get("next")), "Message": msg})
}

// logout ends the dashboard session.
func (d *dashboard) logout(w http.ResponseWriter, r *http.Request) error {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
	return nil
}

// loginURL is where an HTML request without credentials is sent.
func loginURL(r *http.Request) string {
	return "/login?next=" + url.QueryEscape(r.URL.RequestURI())
}
