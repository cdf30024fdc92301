package stack_test

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/klantreis/journey/internal/envdoc"
)

// No Docker engine runs here, so docker-compose.yml is checked by reading
// it: every service it builds is a command of this repository, every
// JOURNEY_ variable it sets is one that service reads, every long-running
// service has a health check, every file it mounts exists.

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Profiles    []string          `yaml:"profiles"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	DependsOn map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
}

func readCompose(t *testing.T) (string, composeFile) {
	t.Helper()
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return root, f
}

func TestComposeServicesExist(t *testing.T) {
	root, f := readCompose(t)
	built := 0
	for name, s := range f.Services {
		if s.Build == nil {
			continue
		}
		built++
		cmd := "journey-" + name
		if len(s.Command) == 0 || s.Command[0] != cmd {
			t.Errorf("service %s runs %v, want %s", name, s.Command, cmd)
		}
		if _, err := os.Stat(filepath.Join(root, "services", name, "cmd", cmd, "main.go")); err != nil {
			t.Errorf("service %s: no command services/%s/cmd/%s in the repository", name, name, cmd)
		}
	}
	// Every service with a command is in the compose file, except the
	// local stack, which is the compose file's one-process twin.
	dirs, err := os.ReadDir(filepath.Join(root, "services"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if !d.IsDir() || d.Name() == "stack" {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, "services", d.Name(), "cmd", "journey-"+d.Name(), "main.go")); err != nil {
			continue
		}
		if _, ok := f.Services[d.Name()]; !ok {
			t.Errorf("services/%s has a command but docker-compose.yml does not run it", d.Name())
		}
	}
	if built == 0 {
		t.Fatal("docker-compose.yml builds no service")
	}
}

func TestComposeEnvIsKnown(t *testing.T) {
	_, f := readCompose(t)
	_, doc, err := envdoc.FindDoc()
	if err != nil {
		t.Fatal(err)
	}
	documented := envdoc.Documented(doc)
	cfgs := configs()
	for name, s := range f.Services {
		if s.Build == nil {
			continue
		}
		var known map[string]bool
		if cfg, ok := cfgs[name]; ok {
			vars, err := envdoc.Vars(cfg)
			if err != nil {
				t.Fatal(err)
			}
			known = map[string]bool{}
			for _, v := range vars {
				known[v.Name] = true
			}
		} else {
			// A service the stack does not compose yet: the document is
			// the best word on its variables.
			known = documented
		}
		var unknown []string
		for k := range s.Environment {
			if strings.HasPrefix(k, envdoc.Prefix+"_") && !known[k] {
				unknown = append(unknown, k)
			}
		}
		sort.Strings(unknown)
		if len(unknown) > 0 {
			t.Errorf("service %s sets %v, which its config does not read", name, unknown)
		}
	}
}

func TestComposeInfrastructure(t *testing.T) {
	root, f := readCompose(t)
	nats, ok := f.Services["nats"]
	if !ok || !strings.HasPrefix(nats.Image, "nats:") {
		t.Fatalf("no nats service with the nats image: %+v", nats)
	}
	if strings.Join(nats.Command, " ") != "-c /etc/nats/compose.conf" {
		t.Errorf("nats runs %v, want the deploy/nats config", nats.Command)
	}
	ch, ok := f.Services["clickhouse"]
	if !ok || !strings.HasPrefix(ch.Image, "clickhouse/clickhouse-server:") {
		t.Fatalf("no clickhouse service with the clickhouse/clickhouse-server image: %+v", ch)
	}
	ver := strings.SplitN(strings.TrimPrefix(ch.Image, "clickhouse/clickhouse-server:"), ".", 3)
	major, _ := strconv.Atoi(ver[0])
	minor := 0
	if len(ver) > 1 {
		minor, _ = strconv.Atoi(ver[1])
	}
	if major < 24 || major == 24 && minor < 8 {
		t.Errorf("clickhouse image %s is older than 24.8", ch.Image)
	}
	for name, s := range f.Services {
		for _, v := range s.Volumes {
			src := strings.SplitN(v, ":", 2)[0]
			if strings.HasPrefix(src, "./") {
				if _, err := os.Stat(filepath.Join(root, src)); err != nil {
					t.Errorf("service %s mounts %s, which does not exist", name, src)
				}
			} else if _, ok := f.Volumes[src]; !ok {
				t.Errorf("service %s uses volume %s, which is not declared", name, src)
			}
		}
		if len(s.Profiles) == 0 && (s.Healthcheck == nil || len(s.Healthcheck.Test) == 0) {
			t.Errorf("service %s has no health check", name)
		}
		for dep := range s.DependsOn {
			if _, ok := f.Services[dep]; !ok {
				t.Errorf("service %s depends on %s, which does not exist", name, dep)
			}
		}
	}
	for _, name := range []string{"nats", "clickhouse"} {
		if len(f.Services[name].Volumes) == 0 {
			t.Errorf("%s keeps no data in a volume", name)
		}
	}
}
