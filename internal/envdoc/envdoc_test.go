package envdoc_test

import (
	"testing"
	"time"

	"github.com/klantreis/journey/internal/envdoc"
)

type inner struct {
	Addr string `envconfig:"ADDR" default:"127.0.0.1:1"`
}

type spec struct {
	DB    inner         `envconfig:"DB"`
	Every time.Duration `envconfig:"EVERY" default:"1m"`
}

func TestVarsAndMissing(t *testing.T) {
	vars, err := envdoc.Vars(&spec{})
	if err != nil {
		t.Fatal(err)
	}
	if len(vars) != 2 || vars[0].Name != "JOURNEY_DB_ADDR" || vars[0].Default != "127.0.0.1:1" || vars[1].Name != "JOURNEY_EVERY" {
		t.Fatalf("got %+v", vars)
	}
	missing, err := envdoc.Missing(&spec{}, []byte("| `JOURNEY_DB_ADDR` | … |"))
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) != 1 || missing[0] != "JOURNEY_EVERY" {
		t.Fatalf("missing = %v", missing)
	}
}
