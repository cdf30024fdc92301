package collector

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/time/rate"
)

// MinTokenLen is the shortest plain-text token accepted: shorter ones are
// guessable.
const MinTokenLen = 16

// ErrNoTokens: the collector has no token configured, so no request could
// ever pass; starting would only hide the misconfiguration.
var ErrNoTokens = errors.New("collector: no tokens configured (set JOURNEY_COLLECTOR_TOKENS or JOURNEY_COLLECTOR_TOKENS_FILE)")

// token is one credential: its SHA-256 hash (the plain text is never kept),
// the source prefixes it may send for, and its own rate limiter.
type token struct {
	hash     [sha256.Size]byte
	prefixes []string
	limiter  *rate.Limiter
}

// allows reports whether the token may send events with this source.
func (t *token) allows(source string) bool {
	for _, p := range t.prefixes {
		if p == "*" || strings.HasPrefix(source, p) {
			return true
		}
	}
	return false
}

// Tokens is the set of credentials the collector accepts.
type Tokens struct {
	list []*token
}

// HashToken returns the form a tokens file stores: "sha256:<hex>".
func HashToken(plain string) string {
	sum := sha256.Sum256([]byte(plain))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ParseTokens reads plain-text tokens in the JOURNEY_COLLECTOR_TOKENS form
// "token=prefix1|prefix2;token2=prefix3". Errors never quote a token.
func ParseTokens(spec string) (*Tokens, error) {
	ts := &Tokens{}
	for i, entry := range strings.Split(spec, ";") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		plain, prefixes, ok := strings.Cut(entry, "=")
		plain = strings.TrimSpace(plain)
		if !ok || len(plain) < MinTokenLen {
			return nil, fmt.Errorf("%w: JOURNEY_COLLECTOR_TOKENS entry %d must be token=prefix|prefix with a token of at least %d characters", ErrConfig, i+1, MinTokenLen)
		}
		t, err := newToken(sha256.Sum256([]byte(plain)), prefixes)
		if err != nil {
			return nil, fmt.Errorf("JOURNEY_COLLECTOR_TOKENS entry %d: %w", i+1, err)
		}
		ts.list = append(ts.list, t)
	}
	return ts, nil
}

// ReadTokensFile reads hashed tokens, one "sha256:<hex>=prefix1|prefix2"
// per line; blank lines and lines starting with # are skipped.
func ReadTokensFile(r io.Reader) (*Tokens, error) {
	ts := &Tokens{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		h, prefixes, ok := strings.Cut(line, "=")
		hexHash, isSHA := strings.CutPrefix(strings.TrimSpace(h), "sha256:")
		raw, err := hex.DecodeString(hexHash)
		if !ok || !isSHA || err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("%w: tokens file line %d must be sha256:<64 hex digits>=prefix|prefix", ErrConfig, n)
		}
		var sum [sha256.Size]byte
		copy(sum[:], raw)
		t, err := newToken(sum, prefixes)
		if err != nil {
			return nil, fmt.Errorf("tokens file line %d: %w", n, err)
		}
		ts.list = append(ts.list, t)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("collector: read tokens file: %w", err)
	}
	return ts, nil
}

// LoadTokens combines the plain-text tokens of s and its tokens file, and
// gives each token its rate limiter. It fails with [ErrNoTokens] when none
// is configured.
func LoadTokens(s Settings) (*Tokens, error) {
	ts, err := ParseTokens(s.Tokens)
	if err != nil {
		return nil, err
	}
	if s.TokensFile != "" {
		b, err := os.ReadFile(s.TokensFile)
		if err != nil {
			return nil, fmt.Errorf("collector: tokens file: %w", err)
		}
		ft, err := ReadTokensFile(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		ts.list = append(ts.list, ft.list...)
	}
	if len(ts.list) == 0 {
		return nil, ErrNoTokens
	}
	ts.setRate(s.Rate, s.Burst)
	return ts, nil
}

func (ts *Tokens) setRate(r float64, burst int) {
	for _, t := range ts.list {
		if r > 0 {
			t.limiter = rate.NewLimiter(rate.Limit(r), burst)
		} else {
			t.limiter = nil
		}
	}
}

func newToken(sum [sha256.Size]byte, prefixes string) (*token, error) {
	t := &token{hash: sum}
	for _, p := range strings.Split(prefixes, "|") {
		if p = strings.TrimSpace(p); p != "" {
			t.prefixes = append(t.prefixes, p)
		}
	}
	if len(t.prefixes) == 0 {
		return nil, fmt.Errorf("%w: a token needs at least one source prefix (\"*\" for any)", ErrConfig)
	}
	return t, nil
}

// lookup finds the token a request presents. It hashes the presented value
// and compares it with every stored hash in constant time, without an early
// exit, so neither a token's bytes nor its position leak through timing.
func (ts *Tokens) lookup(presented string) *token {
	sum := sha256.Sum256([]byte(presented))
	var found *token
	for _, t := range ts.list {
		if subtle.ConstantTimeCompare(sum[:], t.hash[:]) == 1 {
			found = t
		}
	}
	return found
}

// bearer extracts the token of an "Authorization: Bearer <token>" header.
func bearer(h string) (string, bool) {
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return "", false
	}
	return strings.TrimSpace(h[len(scheme):]), true
}
