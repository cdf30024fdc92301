package stack_test

import (
	"sort"
	"strings"
	"testing"

	"github.com/klantreis/journey/internal/envdoc"
	"github.com/klantreis/journey/services/stack"
)

// testOnly are variables the document names that no service reads: they
// configure the tests.
var testOnly = map[string]bool{"JOURNEY_TEST_CLICKHOUSE_ADDR": true}

// TestDocumentedVarsAreRead: every JOURNEY_ variable docs/configuration.md
// lists is read by some command's config, so the document never promises a
// setting that does nothing. (Each service's own test checks the reverse.)
func TestDocumentedVarsAreRead(t *testing.T) {
	_, doc, err := envdoc.FindDoc()
	if err != nil {
		t.Fatal(err)
	}
	read := map[string]bool{}
	for name, cfg := range configs() {
		vars, err := envdoc.Vars(cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, v := range vars {
			read[v.Name] = true
		}
	}
	var stray []string
	for v := range envdoc.Documented(doc) {
		// "JOURNEY_CLICKHOUSE_*" in prose names a family, not a variable.
		if !read[v] && !testOnly[v] && !strings.HasSuffix(v, "_") {
			stray = append(stray, v)
		}
	}
	sort.Strings(stray)
	if len(stray) > 0 {
		t.Fatalf("docs/configuration.md lists variables no config reads: %v", stray)
	}
}

// TestStackVarsDocumented: the stack's own variables are in the document.
func TestStackVarsDocumented(t *testing.T) {
	_, doc, err := envdoc.FindDoc()
	if err != nil {
		t.Fatal(err)
	}
	missing, err := envdoc.Missing(&stack.Config{}, doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		vars, _ := envdoc.Vars(&stack.Config{})
		t.Fatalf("docs/configuration.md lacks %v; the stack's table:\n%s", missing, envdoc.Table(vars))
	}
}
