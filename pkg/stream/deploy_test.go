package stream_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/stream"
)

var update = flag.Bool("update", false, "rewrite deploy/nats/streams from the code")

const deployStreams = "../../deploy/nats/streams"

// deployTopology is production's: the defaults with three replicas.
func deployTopology() stream.Topology {
	t := stream.DefaultTopology()
	t.Replicas = 3
	return t
}

// TestDeployStreamsMatchCode keeps deploy/nats/streams/*.json (for
// `nats stream add --config`) equal to what Topology.Ensure creates, so
// the two never drift. Run with -update after changing the topology.
func TestDeployStreamsMatchCode(t *testing.T) {
	topo := deployTopology()
	want := map[string]jetstream.StreamConfig{}
	for _, cfg := range []jetstream.StreamConfig{topo.TouchpointConfig(), topo.DerivedConfig(), topo.DeadLetterConfig(), topo.ReplayConfig()} {
		want[cfg.Name+".json"] = cfg
	}
	if *update {
		for name, cfg := range want {
			b, err := json.MarshalIndent(cfg, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(deployStreams, name), append(b, '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, err := filepath.Glob(filepath.Join(deployStreams, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(want) {
		t.Fatalf("deploy has %v, code builds %d streams", files, len(want))
	}
	for _, f := range files {
		cfg, ok := want[filepath.Base(f)]
		if !ok {
			t.Errorf("%s: no such stream in the code", f)
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var got jetstream.StreamConfig
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(cfg)
		if !bytes.Equal(gb, wb) {
			t.Errorf("%s drifted from the code (go test ./pkg/stream -run TestDeployStreams -update):\n file %s\n code %s", f, gb, wb)
		}
		if got.Replicas != 3 || got.Storage != jetstream.FileStorage {
			t.Errorf("%s: replicas %d storage %s", f, got.Replicas, got.Storage)
		}
	}
}

// TestDeployStreamsLoad: the R1 variant of the deploy files is accepted by
// a real server and behaves as Ensure's streams (the embedded server is a
// single node, so R3 itself cannot be created here).
func TestDeployStreamsLoad(t *testing.T) {
	js := connect(t)
	files, err := filepath.Glob(filepath.Join(deployStreams, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatal(files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var cfg jetstream.StreamConfig
		if err := json.Unmarshal(b, &cfg); err != nil {
			t.Fatal(err)
		}
		cfg.Replicas = 1
		if _, err := js.CreateStream(t.Context(), cfg); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	// Ensure then finds them as it would have made them: nothing changes.
	before := serverConfigs(t, js)
	if err := stream.DefaultTopology().Ensure(t.Context(), js); err != nil {
		t.Fatal(err)
	}
	after := serverConfigs(t, js)
	for name, b := range before {
		if after[name] != b {
			t.Errorf("%s: Ensure changed the deployed config:\n%s\n%s", name, b, after[name])
		}
	}
}

func serverConfigs(t *testing.T, js jetstream.JetStream) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, name := range []string{stream.TouchpointStream, stream.DerivedStream, stream.DeadLetterStream} {
		s, err := js.Stream(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(s.CachedInfo().Config)
		out[name] = string(b)
	}
	return out
}
