package simulator_test

import (
	"testing"

	"github.com/klantreis/journey/internal/envdoc"
	"github.com/klantreis/journey/services/simulator"
)

func TestConfigDocumented(t *testing.T) {
	_, doc, err := envdoc.FindDoc()
	if err != nil {
		t.Fatal(err)
	}
	missing, err := envdoc.Missing(&simulator.Config{}, doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		vars, _ := envdoc.Vars(&simulator.Config{})
		t.Fatalf("docs/configuration.md lacks %v; the simulator's table:\n%s", missing, envdoc.Table(vars))
	}
}
