package projector

import (
	"strings"
	"testing"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// The names the settings had before they matched the writer's still work
// for one release, with a warning that names the replacement.
func TestDeprecatedSettingNames(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want func(s Settings) bool
		warn []string
	}{
		{"new names only", map[string]string{"BATCH_AGE": "3ms", "MAX_BACKOFF": "2s", "DRAIN": "4s"},
			func(s Settings) bool {
				return s.BatchAge == 3*time.Millisecond && s.MaxBackoff == 2*time.Second && s.Drain == 4*time.Second
			}, nil},
		{"defaults", nil,
			func(s Settings) bool {
				return s.BatchAge == 2*time.Millisecond && s.MaxBackoff == 5*time.Second && s.Drain == 10*time.Second
			}, nil},
		{"old names", map[string]string{"BATCH_WAIT": "7ms", "RETRY_MAX": "1s", "DRAIN_TIMEOUT": "20s"},
			func(s Settings) bool {
				return s.BatchAge == 7*time.Millisecond && s.MaxBackoff == time.Second && s.Drain == 20*time.Second
			},
			[]string{"JOURNEY_PROJECTOR_BATCH_WAIT is deprecated", "set JOURNEY_PROJECTOR_BATCH_AGE", "JOURNEY_PROJECTOR_RETRY_MAX",
				"JOURNEY_PROJECTOR_MAX_BACKOFF", "JOURNEY_PROJECTOR_DRAIN_TIMEOUT", "set JOURNEY_PROJECTOR_DRAIN instead (using 20s)"}},
		{"an old name set wins over the new", map[string]string{"RETRY_MAX": "1s", "MAX_BACKOFF": "9s"},
			func(s Settings) bool { return s.MaxBackoff == time.Second }, []string{"JOURNEY_PROJECTOR_RETRY_MAX is deprecated"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A prefix of the test's own, so that no developer variable leaks in.
			const prefix = "JOURNEYDEPRECATEDTEST"
			for k, v := range tc.env {
				t.Setenv(prefix+"_PROJECTOR_"+k, v)
			}
			var cfg Config
			if err := envconfig.Process(prefix, &cfg); err != nil {
				t.Fatal(err)
			}
			warnings := strings.Join(cfg.Projector.useDeprecated(), "\n")
			if !tc.want(cfg.Projector) {
				t.Fatalf("settings %+v", cfg.Projector)
			}
			if (warnings == "") != (len(tc.warn) == 0) {
				t.Fatalf("warnings %q, want %q", warnings, tc.warn)
			}
			for _, w := range tc.warn {
				if !strings.Contains(warnings, w) {
					t.Fatalf("warnings %q do not say %q", warnings, w)
				}
			}
		})
	}
}
