package projector_test

import (
	"os"
	"testing"

	"github.com/kelseyhightower/envconfig"

	"github.com/klantreis/journey/internal/envdoc"
	"github.com/klantreis/journey/services/projector"
)

func TestConfigDocumented(t *testing.T) {
	_, doc, err := envdoc.FindDoc()
	if err != nil {
		t.Fatal(err)
	}
	missing, err := envdoc.Missing(&projector.Config{}, doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Fatalf("docs/configuration.md does not list %v", missing)
	}
	if os.Getenv("JOURNEY_PRINT_PROJECTOR_TABLE") != "" {
		vars, _ := envdoc.Vars(&projector.Config{Projector: projector.Settings{}})
		t.Log("\n" + envdoc.Table(vars))
	}
}

func TestConfigDefaults(t *testing.T) {
	var cfg projector.Config
	if err := envconfig.Process("JOURNEY_TEST_NONE", &cfg); err != nil {
		t.Fatal(err)
	}
	s := cfg.Projector
	if s.Addr != "127.0.0.1:8091" || s.SweepInterval.Minutes() != 1 || s.Rules().Validate() != nil || s.LoyalOrders != 3 {
		t.Fatalf("defaults %+v", s)
	}
}

func TestOwnedPartitions(t *testing.T) {
	cases := []struct {
		spec string
		want []int
		ok   bool
	}{
		{"all", []int{0, 1, 2, 3}, true},
		{"", []int{0, 1, 2, 3}, true},
		{"0-1", []int{0, 1}, true},
		{"3,0-1,1", []int{3, 0, 1}, true},
		{"4", nil, false},
		{"2-1", nil, false},
		{"x", nil, false},
	}
	for _, c := range cases {
		got, err := projector.Settings{Partitions: c.spec}.OwnedPartitions(4)
		if (err == nil) != c.ok {
			t.Fatalf("%q: err %v", c.spec, err)
		}
		if c.ok && len(got) != len(c.want) {
			t.Fatalf("%q: %v, want %v", c.spec, got, c.want)
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Fatalf("%q: %v, want %v", c.spec, got, c.want)
			}
		}
	}
}
