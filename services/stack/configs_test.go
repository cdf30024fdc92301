package stack_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/klantreis/journey/services/api"
	"github.com/klantreis/journey/services/collector"
	"github.com/klantreis/journey/services/journeyctl"
	"github.com/klantreis/journey/services/projector"
	"github.com/klantreis/journey/services/simulator"
	"github.com/klantreis/journey/services/stack"
	"github.com/klantreis/journey/services/writer"
)

// configs is every command's config by service name: what each reads from
// the environment. A service plugs in here when it lands.
func configs() map[string]any {
	return map[string]any{
		"api":        &api.Config{},
		"collector":  &collector.Config{},
		"simulator":  &simulator.Config{},
		"stack":      &stack.Config{},
		"projector":  &projector.Config{},
		"writer":     &writer.Config{},
		"journeyctl": &journeyctl.Config{},
	}
}

// repoRoot walks up to go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}
