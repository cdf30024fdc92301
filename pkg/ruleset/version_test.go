package ruleset

import (
	"errors"
	"testing"
	"time"

	"github.com/klantreis/journey/pkg/journey"
)

func TestParseSpec(t *testing.T) {
	base := journey.DefaultRules()
	cases := []struct {
		spec string
		want journey.Rules
		err  bool
	}{
		{"loyal=2/365d", journey.Rules{LoyalOrders: 2, LoyalWindow: 365 * journey.Day, InactiveAfter: 365 * journey.Day}, false},
		{"loyal=4/8760h, inactive=180d", journey.Rules{LoyalOrders: 4, LoyalWindow: 8760 * time.Hour, InactiveAfter: 180 * journey.Day}, false},
		{"inactive=90d", journey.Rules{LoyalOrders: 3, LoyalWindow: 365 * journey.Day, InactiveAfter: 90 * journey.Day}, false},
		{"", base, true},
		{"loyal=2", base, true},
		{"loyal=x/365d", base, true},
		{"loyal=0/365d", base, true},
		{"loyal=2/-3d", base, true},
		{"inactive=0d", base, true},
		{"loyal=2/365d,loyal=3/365d", base, true},
		{"vip=1", base, true},
		{"inactive=soon", base, true},
	}
	for _, c := range cases {
		got, err := ParseSpec(c.spec, base)
		if c.err {
			if !errors.Is(err, ErrSpec) {
				t.Errorf("%q: err = %v, want ErrSpec", c.spec, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q = %+v, %v; want %+v", c.spec, got, err, c.want)
		}
		back, err := ParseSpec(FormatSpec(got), base)
		if err != nil || back != got {
			t.Errorf("FormatSpec(%q) = %q does not read back: %+v %v", c.spec, FormatSpec(got), back, err)
		}
	}
}

func TestNamesAndNext(t *testing.T) {
	for name, ok := range map[string]bool{"v1": true, "v2": true, "v12": true, "v0": false, "v02": false, "x2": false, "v": false, "v-1": false} {
		if ValidName(name) != ok {
			t.Errorf("ValidName(%q) = %v", name, !ok)
		}
	}
	if n := Next(nil); n != "v2" {
		t.Errorf("Next(nil) = %s", n)
	}
	if n := Next([]string{"v2", "v10", "v3"}); n != "v11" {
		t.Errorf("Next = %s", n)
	}
	v2 := Version{Name: "v2"}
	base := Version{Name: Base}
	if v2.TableSuffix() != "__v2" || v2.Bucket("journey_customers") != "journey_customers__v2" || v2.Durable("journey-projector") != "journey-projector-v2" {
		t.Errorf("v2 names: %q %q %q", v2.TableSuffix(), v2.Bucket("journey_customers"), v2.Durable("journey-projector"))
	}
	if base.TableSuffix() != "" || base.Bucket("b") != "b" || base.Durable("d") != "d" {
		t.Errorf("base names changed")
	}
}
