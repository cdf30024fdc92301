package collector

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseTokens(t *testing.T) {
	ts, err := ParseTokens(" alpha-token-0123456789=crm/|shop/ ; beta-token-0123456789=* ")
	if err != nil {
		t.Fatal(err)
	}
	a, b := ts.lookup("alpha-token-0123456789"), ts.lookup("beta-token-0123456789")
	if a == nil || b == nil || a == b {
		t.Fatalf("lookup: %v %v", a, b)
	}
	if ts.lookup("alpha-token-012345678") != nil || ts.lookup("") != nil {
		t.Fatal("a wrong token was found")
	}
	for src, want := range map[string]bool{"crm/eu": true, "shop/": true, "crm": false, "survey-tool": false} {
		if a.allows(src) != want {
			t.Errorf("alpha allows %q = %v", src, !want)
		}
	}
	if !b.allows("anything") {
		t.Error("* must allow every source")
	}
	for _, bad := range []string{"short=crm", "long-enough-token-000", "long-enough-token-000= | "} {
		_, err := ParseTokens(bad)
		if !errors.Is(err, ErrConfig) {
			t.Errorf("%q: err %v, want ErrConfig", bad, err)
		}
		if err != nil && strings.Contains(err.Error(), "long-enough") {
			t.Errorf("error quotes the token: %v", err)
		}
	}
}

func TestTokensFile(t *testing.T) {
	plain := "file-token-0123456789abcdef"
	dir := t.TempDir()
	p := filepath.Join(dir, "tokens")
	content := "# survey tool\n\n" + HashToken(plain) + "=survey-tool\n"
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	s := DefaultSettings()
	s.TokensFile = p
	ts, err := LoadTokens(s)
	if err != nil {
		t.Fatal(err)
	}
	tok := ts.lookup(plain)
	if tok == nil || !tok.allows("survey-tool") || tok.allows("crm/") || tok.limiter == nil {
		t.Fatalf("file token: %+v", tok)
	}
	if strings.Contains(content, plain) {
		t.Fatal("the file must not hold the token")
	}
	if err := os.WriteFile(p, []byte("sha256:abcd=x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTokens(s); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("bad hash: %v", err)
	}
	if _, err := LoadTokens(DefaultSettings()); !errors.Is(err, ErrNoTokens) {
		t.Fatalf("no tokens: %v", err)
	}
}

func TestBearer(t *testing.T) {
	for h, want := range map[string]string{"Bearer abc": "abc", "bearer  abc ": "abc", "Basic abc": "", "Bearer": "", "": ""} {
		got, _ := bearer(h)
		if got != want {
			t.Errorf("bearer(%q) = %q, want %q", h, got, want)
		}
	}
}

func TestRequestMode(t *testing.T) {
	cases := []struct {
		ct     string
		binary bool
		want   mode
	}{
		{"application/cloudevents+json", false, modeStructured},
		{"application/cloudevents+json; charset=UTF-8", false, modeStructured},
		{"application/cloudevents-batch+json", false, modeBatch},
		{"Application/CloudEvents-Batch+JSON", false, modeBatch},
		{"application/json", true, modeBinary},
		{"application/json; charset=utf-8", true, modeBinary},
		{"", true, modeBinary},
		{"application/cloudevents+json", true, modeStructured}, // the media type wins
		{"application/json", false, 0},
		{"text/plain", true, 0},
		{"application/cloudevents+avro", false, 0},
		{"application/cloudevents+json; charset=latin1", false, 0},
		{"%%%", true, 0},
	}
	for _, c := range cases {
		h := http.Header{}
		if c.ct != "" {
			h.Set("Content-Type", c.ct)
		}
		if c.binary {
			h.Set("Ce-Specversion", "1.0")
		}
		got, err := requestMode(h)
		if got != c.want || (c.want == 0) != (err != nil) {
			t.Errorf("%q binary=%v: %v %v, want %v", c.ct, c.binary, got, err, c.want)
		}
		if err != nil && !errors.Is(err, errMediaType) {
			t.Errorf("%q: error %v does not wrap errMediaType", c.ct, err)
		}
	}
}

func TestTolerateStrayPercent(t *testing.T) {
	h := http.Header{"Ce-Promo": {"50% off"}, "Ce-Subject": {"a%2Fb"}, "Ce-End": {"100%"}, "X-Other": {"1%"}}
	tolerateStrayPercent(h)
	want := map[string]string{"Ce-Promo": "50%25 off", "Ce-Subject": "a%2Fb", "Ce-End": "100%25", "X-Other": "1%"}
	for k, v := range want {
		if h.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, h.Get(k), v)
		}
	}
}

func TestSettingsValidate(t *testing.T) {
	if err := DefaultSettings().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	s := DefaultSettings()
	s.Burst = 10
	if err := s.Validate(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "JOURNEY_COLLECTOR_BURST") {
		t.Fatalf("burst below batch: %v", err)
	}
	s = DefaultSettings()
	s.MaxEventBytes = int(s.MaxRequestBytes) + 1
	if err := s.Validate(); !errors.Is(err, ErrConfig) {
		t.Fatalf("event over request: %v", err)
	}
}
