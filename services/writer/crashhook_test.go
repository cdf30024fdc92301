package writer_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/klantreis/journey/internal/envdoc"
	"github.com/klantreis/journey/services/writer"
)

// The crash hook is a test seam, not a setting: no environment variable of
// the writer's configuration arms it, and a bad point is refused.
func TestCrashHookIsNoSetting(t *testing.T) {
	vars, err := envdoc.Vars(&writer.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vars {
		if strings.Contains(v.Name, "CRASH") {
			t.Fatalf("the writer's configuration reads %s", v.Name)
		}
	}
	var cfg writer.Config
	if err := writer.SetCrash(&cfg, "halfway", 1); !errors.Is(err, writer.ErrConfig) || !strings.Contains(err.Error(), `"halfway"`) {
		t.Fatalf("SetCrash(halfway) = %v, want a config error naming the point", err)
	}
	if err := writer.SetCrash(&cfg, writer.CrashMidInsert, 0); !errors.Is(err, writer.ErrConfig) {
		t.Fatalf("SetCrash(batch 0) = %v, want a config error", err)
	}
}
