// Package envdoc keeps docs/configuration.md and the services' config
// structs in agreement: it lists the environment variables a struct reads
// (as envconfig names them) and checks them against the document.
package envdoc

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/kelseyhightower/envconfig"
)

// Prefix is the prefix of every journey variable.
const Prefix = "JOURNEY"

// Var is one environment variable of a config struct.
type Var struct {
	Name    string
	Type    string
	Default string
}

// Vars lists the variables spec (a pointer to a config struct) reads, in
// name order.
func Vars(spec any) ([]Var, error) {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 0, ' ', 0)
	const format = "{{range .}}{{usage_key .}}\x1f{{usage_type .}}\x1f{{usage_default .}}\n{{end}}"
	if err := envconfig.Usagef(Prefix, spec, tw, format); err != nil {
		return nil, err
	}
	tw.Flush()
	var out []Var
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "\x1f")
		if len(f) != 3 {
			return nil, fmt.Errorf("envdoc: unexpected usage line %q", line)
		}
		out = append(out, Var{Name: strings.TrimSpace(f[0]), Type: strings.TrimSpace(f[1]), Default: strings.TrimSpace(f[2])})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

var varRE = regexp.MustCompile(`\bJOURNEY_[A-Z0-9_]+\b`)

// Documented returns the JOURNEY_ variables named in a document.
func Documented(doc []byte) map[string]bool {
	m := map[string]bool{}
	for _, v := range varRE.FindAll(doc, -1) {
		m[string(v)] = true
	}
	return m
}

// FindDoc walks up from the working directory to docs/configuration.md.
func FindDoc() (string, []byte, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", nil, err
	}
	for {
		p := filepath.Join(dir, "docs", "configuration.md")
		if b, err := os.ReadFile(p); err == nil {
			return p, b, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", nil, fmt.Errorf("envdoc: docs/configuration.md not found above the working directory")
		}
		dir = parent
	}
}

// Missing returns the variables of spec that the document does not name.
func Missing(spec any, doc []byte) ([]string, error) {
	vars, err := Vars(spec)
	if err != nil {
		return nil, err
	}
	have := Documented(doc)
	var missing []string
	for _, v := range vars {
		if !have[v.Name] {
			missing = append(missing, v.Name)
		}
	}
	return missing, nil
}

// Table renders vars as a Markdown table for the document.
func Table(vars []Var) string {
	var b strings.Builder
	b.WriteString("| variable | type | default |\n|---|---|---|\n")
	for _, v := range vars {
		d := v.Default
		if d == "" {
			d = "—"
		} else {
			d = "`" + d + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", v.Name, v.Type, d)
	}
	return b.String()
}
