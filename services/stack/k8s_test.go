package stack_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/klantreis/journey/internal/envdoc"
)

// No Kubernetes runs here, so deploy/k8s/journey.yaml is checked by
// reading it: the topology (3 NATS nodes, 3 Keeper nodes, 2 ClickHouse
// replicas, every service more than once), probes and requests on every
// container, every JOURNEY_ variable one its service reads, and NATS on
// deploy/nats/cluster's settings.

type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		Replicas *int `yaml:"replicas"`
		Template struct {
			Spec struct {
				Containers []k8sContainer `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type k8sContainer struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Env     []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom any    `yaml:"valueFrom"`
	} `yaml:"env"`
	ReadinessProbe any `yaml:"readinessProbe"`
	LivenessProbe  any `yaml:"livenessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
	} `yaml:"resources"`
}

func readK8s(t *testing.T) (string, []k8sObject) {
	t.Helper()
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "deploy", "k8s", "journey.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var objs []k8sObject
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var o k8sObject
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("deploy/k8s/journey.yaml: %v", err)
		}
		objs = append(objs, o)
	}
	return root, objs
}

func TestK8sTopology(t *testing.T) {
	root, objs := readK8s(t)
	byName := map[string]k8sObject{}
	services := map[string]int{} // journey service -> replicas over its Deployments
	cfgs := configs()
	for _, o := range objs {
		byName[o.Kind+"/"+o.Metadata.Name] = o
		if o.Kind != "Deployment" && o.Kind != "StatefulSet" {
			continue
		}
		for _, c := range o.Spec.Template.Spec.Containers {
			if c.ReadinessProbe == nil || c.LivenessProbe == nil {
				t.Errorf("%s %s: container %s lacks a readiness or liveness probe", o.Kind, o.Metadata.Name, c.Name)
			}
			if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" {
				t.Errorf("%s %s: container %s has no cpu and memory requests", o.Kind, o.Metadata.Name, c.Name)
			}
			if o.Kind != "Deployment" {
				continue
			}
			cfg, ok := cfgs[c.Name]
			if !ok || len(c.Command) != 1 || c.Command[0] != "journey-"+c.Name {
				t.Errorf("Deployment %s runs %v as %s, want a journey service's command", o.Metadata.Name, c.Command, c.Name)
				continue
			}
			services[c.Name] += *o.Spec.Replicas
			vars, err := envdoc.Vars(cfg)
			if err != nil {
				t.Fatal(err)
			}
			known := map[string]bool{}
			for _, v := range vars {
				known[v.Name] = true
			}
			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
				if strings.HasPrefix(e.Name, envdoc.Prefix+"_") && !known[e.Name] {
					t.Errorf("Deployment %s sets %s, which journey-%s does not read", o.Metadata.Name, e.Name, c.Name)
				}
			}
			if known["JOURNEY_NATS_URL"] && (len(strings.Split(env["JOURNEY_NATS_URL"], ",")) != 3 || known["JOURNEY_STREAM_REPLICAS"] && env["JOURNEY_STREAM_REPLICAS"] != "3") {
				t.Errorf("Deployment %s: want all 3 NATS nodes and R3, got %q and replicas %q", o.Metadata.Name, env["JOURNEY_NATS_URL"], env["JOURNEY_STREAM_REPLICAS"])
			}
			if known["JOURNEY_CLICKHOUSE_ADDR"] && (len(strings.Split(env["JOURNEY_CLICKHOUSE_ADDR"], ",")) != 2 || env["JOURNEY_CLICKHOUSE_CLUSTER"] != "journey") {
				t.Errorf("Deployment %s: want both ClickHouse replicas and the cluster, got %q and %q", o.Metadata.Name, env["JOURNEY_CLICKHOUSE_ADDR"], env["JOURNEY_CLICKHOUSE_CLUSTER"])
			}
		}
	}
	for name, want := range map[string]int{"StatefulSet/nats": 3, "StatefulSet/keeper": 3, "StatefulSet/clickhouse": 2} {
		o, ok := byName[name]
		if !ok || o.Spec.Replicas == nil || *o.Spec.Replicas != want {
			t.Errorf("%s: want %d replicas", name, want)
		}
	}
	for _, s := range []string{"collector", "writer", "projector", "api"} {
		if services[s] < 2 {
			t.Errorf("journey-%s runs %d times, want several", s, services[s])
		}
	}
	chConf := byName["ConfigMap/clickhouse-config"].Data["cluster.xml"]
	for _, want := range []string{"<journey>", "keeper-0.keeper", "<macros>", "<internal_replication>true</internal_replication>"} {
		if !strings.Contains(chConf, want) {
			t.Errorf("clickhouse-config lacks %s", want)
		}
	}
	if !strings.Contains(byName["StatefulSet/keeper"].Spec.Template.Spec.Containers[0].Image, "clickhouse-keeper") {
		t.Error("the coordination service is not ClickHouse Keeper")
	}
	// NATS runs deploy/nats/cluster/common.conf, only the routes renamed.
	common, err := os.ReadFile(filepath.Join(root, "deploy", "nats", "cluster", "common.conf"))
	if err != nil {
		t.Fatal(err)
	}
	routes := regexp.MustCompile(`(?s)routes: \[.*?\]`)
	got := routes.ReplaceAllString(byName["ConfigMap/nats-config"].Data["common.conf"], "routes")
	if want := routes.ReplaceAllString(string(common), "routes"); strings.TrimSpace(got) != strings.TrimSpace(want) {
		t.Errorf("nats-config's common.conf differs from deploy/nats/cluster/common.conf beyond the routes:\n%s", got)
	}
}
