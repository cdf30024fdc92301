// Package archtest enforces the import rules of the architecture
// (docs/architecture.md): which floor may import what. It reads the
// module's packages with `go list -deps -json`, so a rule broken by an
// indirect import fails too.
package archtest

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/klantreis/journey"

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func list(t *testing.T) map[string]pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-json", module+"/...")
	cmd.Dir = "../.."
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(out)
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs[p.ImportPath] = p
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	if len(pkgs) < 20 {
		t.Fatalf("go list found %d packages: the test reads the wrong tree", len(pkgs))
	}
	return pkgs
}

// rule: packages under from must not depend (directly or not) on any
// package with one of the prefixes.
type rule struct {
	from   []string
	banned []string
	why    string
}

var rules = []rule{
	{[]string{"pkg/touchpoint", "pkg/journey", "pkg/projection", "pkg/account"},
		[]string{"github.com/nats-io/", "github.com/ClickHouse/", "net/http"},
		"the domain packages are pure: no NATS, no ClickHouse, no HTTP"},
	{[]string{"pkg/"}, []string{module + "/services/", module + "/bench/"}, "pkg/ never imports services/ or bench/"},
	{[]string{"pkg/stream"}, []string{"github.com/ClickHouse/"}, "stream knows no ClickHouse"},
	{[]string{"pkg/warehouse"}, []string{"github.com/nats-io/"}, "warehouse knows no NATS"},
	{[]string{"internal/"}, []string{module + "/services/", module + "/bench/"}, "internal tooling serves services, never the reverse"},
}

// compositionRoot are the services that may import other services.
var compositionRoot = map[string]bool{"stack": true, "journeyctl": true}

func TestImportRules(t *testing.T) {
	pkgs := list(t)
	for path, p := range pkgs {
		rel := strings.TrimPrefix(path, module+"/")
		deps := append(append([]string{}, p.Imports...), p.Deps...)
		for _, r := range rules {
			if !under(rel, r.from) {
				continue
			}
			for _, d := range deps {
				for _, b := range r.banned {
					if d == strings.TrimSuffix(b, "/") || strings.HasPrefix(d, b) {
						t.Errorf("%s depends on %s: %s", rel, d, r.why)
					}
				}
			}
		}
		// Services import each other only through the composition roots:
		// the local stack, and journeyctl, whose re-derive projects with the
		// projector's own stores, decoder and rows rather than a copy
		// (docs/architecture.md). No service imports either of them.
		if svc := service(rel); svc != "" && !compositionRoot[svc] {
			for _, d := range p.Imports {
				if other := service(strings.TrimPrefix(d, module+"/")); other != "" && other != svc {
					t.Errorf("%s imports %s: services import each other only through services/stack and services/journeyctl", rel, d)
				}
			}
		}
	}
}

func under(rel string, prefixes []string) bool {
	for _, p := range prefixes {
		if rel == strings.TrimSuffix(p, "/") || strings.HasPrefix(rel, strings.TrimSuffix(p, "/")+"/") {
			return true
		}
	}
	return false
}

// service names the service a package belongs to ("" outside services/).
func service(rel string) string {
	rest, ok := strings.CutPrefix(rel, "services/")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, "/")
	return name
}
