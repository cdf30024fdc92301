package stack_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

// The compose NATS server loads deploy/nats/compose.conf with the
// passwords compose passes it, and every service that connects to NATS
// does so as a user that file defines, with the password the server got.
func TestComposeNATSUsers(t *testing.T) {
	root, f := readCompose(t)
	nats := f.Services["nats"]
	for k, v := range nats.Environment {
		if !strings.HasPrefix(v, "${"+k+":?") {
			t.Errorf("nats: %s=%q, want it required from the environment (${%s:?...})", k, v, k)
		}
		t.Setenv(k, "pw-"+k)
	}
	opts, err := server.ProcessConfigFile(filepath.Join(root, "deploy/nats/compose.conf"))
	if err != nil {
		t.Fatalf("deploy/nats/compose.conf: %v", err)
	}
	if !opts.JetStream || opts.StoreDir == "" {
		t.Errorf("compose.conf: JetStream %v at %q, want the production JetStream settings", opts.JetStream, opts.StoreDir)
	}
	users := map[string]*server.User{}
	for _, u := range opts.Users {
		users[u.Username] = u
	}
	for name, s := range f.Services {
		if s.Build == nil || s.Environment["JOURNEY_NATS_URL"] == "" {
			continue
		}
		user := s.Environment["JOURNEY_NATS_USER"]
		u, ok := users[user]
		if !ok {
			t.Errorf("service %s connects to NATS as %q, which compose.conf does not define", name, user)
			continue
		}
		pw := s.Environment["JOURNEY_NATS_PASSWORD"]
		envName := strings.TrimSuffix(strings.SplitN(strings.TrimPrefix(pw, "${"), ":", 2)[0], "}")
		if "pw-"+envName != u.Password {
			t.Errorf("service %s: password from %s, but the server's user %s has another", name, envName, user)
		}
		if u.Permissions == nil || u.Permissions.Publish == nil {
			t.Errorf("user %s has no publish allow-list", user)
		}
	}
}
