package stream_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/natsserver/natstest"
	"github.com/klantreis/journey/pkg/stream"
)

const deployPermissions = "../../deploy/nats/permissions.conf"

// TestDeployPermissionsMatchCode keeps deploy/nats/permissions.conf (for a
// real nats-server) equal to what the embedded server enforces. Run with
// -update after changing the permissions.
func TestDeployPermissionsMatchCode(t *testing.T) {
	perms, err := stream.DefaultAccessNames().Permissions()
	if err != nil {
		t.Fatal(err)
	}
	want := stream.AuthConfig(perms)
	if *update {
		if err := os.WriteFile(deployPermissions, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(deployPermissions)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("%s differs from stream.AuthConfig; run go test ./pkg/stream -run TestDeployPermissionsMatchCode -update", deployPermissions)
	}
}

func TestAccessNamesRejectsBadNames(t *testing.T) {
	n := stream.DefaultAccessNames()
	n.WriterConsumer = "a.b"
	if _, err := n.Permissions(); !errors.Is(err, stream.ErrAccess) {
		t.Fatalf("dotted consumer name: %v", err)
	}
	n = stream.DefaultAccessNames()
	n.Partitions = 0
	if _, err := n.Permissions(); !errors.Is(err, stream.ErrAccess) {
		t.Fatalf("0 partitions: %v", err)
	}
}

// asUser connects as one user and collects the asynchronous errors the
// server sends it (permission violations arrive that way).
type asUser struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	mu   sync.Mutex
	errs []string
}

// secureWithStreams starts a server with the deployed permissions and
// creates the streams as the admin, as deploy/nats/streams does before
// the services start; it returns the server and the admin's connection.
func secureWithStreams(t *testing.T) (natstest.Secure, *asUser) {
	t.Helper()
	s := natstest.StartSecure(t, stream.DefaultAccessNames())
	admin := connectAs(t, s, stream.UserAdmin)
	if err := stream.DefaultTopology().Ensure(context.Background(), admin.js); err != nil {
		t.Fatal(err)
	}
	return s, admin
}

func connectAs(t *testing.T, s natstest.Secure, user string) *asUser {
	t.Helper()
	a := &asUser{}
	c := s.Conn(user)
	c.RequestTimeout = time.Second
	nc, js, err := stream.Connect(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		a.mu.Lock()
		a.errs = append(a.errs, err.Error())
		a.mu.Unlock()
	})
	t.Cleanup(nc.Close)
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		t.Fatalf("%s cannot connect: %v", user, err)
	}
	a.nc, a.js = nc, js
	return a
}

// violated waits until the server reported a permission violation that
// names subject.
func (a *asUser) violated(t *testing.T, kind, subject string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		a.mu.Lock()
		for _, e := range a.errs {
			if strings.Contains(e, "Permissions Violation for "+kind) && strings.Contains(e, subject) {
				a.mu.Unlock()
				return
			}
		}
		a.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	t.Fatalf("no permission violation for %s to %q; errors: %v", kind, subject, a.errs)
}

func TestAnonymousIsRefused(t *testing.T) {
	s := natstest.StartSecure(t, stream.DefaultAccessNames())
	if nc, err := nats.Connect(s.ClientURL()); err == nil {
		nc.Close()
		t.Fatal("an anonymous client was let in")
	}
	c := s.Conn(stream.UserWriter)
	c.Password = "wrong"
	if nc, err := nats.Connect(c.URL, nats.UserInfo(c.User, c.Password)); err == nil {
		nc.Close()
		t.Fatal("a wrong password was let in")
	}
}

// TestWriterCannotPublishTouchpoints: the writer's user consumes its
// consumer and publishes its dead letters, and no more; the collector's
// user publishes touchpoints.
func TestWriterCannotPublishTouchpoints(t *testing.T) {
	ctx := context.Background()
	s, admin := secureWithStreams(t)
	collector := connectAs(t, s, stream.UserCollector)
	// Ensure reads only, as the streams match: the collector may do that.
	if err := stream.DefaultTopology().Ensure(ctx, collector.js); err != nil {
		t.Fatalf("collector's Ensure of existing streams: %v", err)
	}
	publish(t, collector.js, visit(t, "shop", "ok-1", "c-1"))

	writer := connectAs(t, s, stream.UserWriter)
	m, err := stream.NewFactMsg(ptr(visit(t, "shop", "forged-1", "c-1")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := writer.js.PublishMsg(ctx, m); err == nil {
		t.Fatal("the writer published a touchpoint")
	}
	writer.violated(t, "Publish", m.Subject)
	// Nor may it change the stream (a shorter max age would delete data).
	bad := stream.DefaultTopology()
	bad.MaxAge = time.Hour
	if err := bad.Ensure(ctx, writer.js); err == nil {
		t.Fatal("the writer updated TOUCHPOINTS")
	}
	writer.violated(t, "Publish", "$JS.API.STREAM.UPDATE.TOUCHPOINTS")

	// What it needs works: its consumer, the message, the ack, a dead letter.
	cons, err := writer.js.CreateOrUpdateConsumer(ctx, stream.TouchpointStream, jetstream.ConsumerConfig{
		Durable: "writer", FilterSubject: stream.AllFactsFilter, AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("writer creates its consumer: %v", err)
	}
	got, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatalf("writer fetches: %v", err)
	}
	if err := got.DoubleAck(ctx); err != nil {
		t.Fatalf("writer acks: %v", err)
	}
	if err := stream.PublishDeadLetter(ctx, writer.js, stream.FromMsg("writer", got, "invalid", errors.New("test"))); err != nil {
		t.Fatalf("writer dead-letters: %v", err)
	}
	// But not as the projector, nor another's consumer.
	if _, err := writer.js.CreateOrUpdateConsumer(ctx, stream.TouchpointStream, jetstream.ConsumerConfig{
		Durable: "journey-projector-p0", AckPolicy: jetstream.AckExplicitPolicy}); err == nil {
		t.Fatal("the writer created the projector's consumer")
	}

	info, err := admin.js.Stream(ctx, stream.TouchpointStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := info.CachedInfo().State.Msgs; n != 1 {
		t.Fatalf("TOUCHPOINTS holds %d messages, want the collector's 1", n)
	}
	t.Logf("writer refused touchpoint.>, STREAM.UPDATE and another consumer; allowed its consumer, ack, dead letter")
}

// TestCollectorCannotReadState: the projector's user writes a customer's
// state; the collector's user can neither read the bucket nor overhear the
// projector's replies.
func TestCollectorCannotReadState(t *testing.T) {
	ctx := context.Background()
	names := stream.DefaultAccessNames()
	s := natstest.StartSecure(t, names)
	projector := connectAs(t, s, stream.UserProjector)
	kv, err := projector.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: names.StateBucket, History: 1})
	if err != nil {
		t.Fatalf("projector creates its bucket: %v", err)
	}
	key := stream.CustomerKey("c-1")
	if _, err := kv.Put(ctx, key, []byte(`{"stage":"customer"}`)); err != nil {
		t.Fatalf("projector writes state: %v", err)
	}
	if e, err := kv.Get(ctx, key); err != nil || string(e.Value()) != `{"stage":"customer"}` {
		t.Fatalf("projector reads state: %v", err)
	}

	collector := connectAs(t, s, stream.UserCollector)
	if _, err := collector.js.KeyValue(ctx, names.StateBucket); err == nil {
		t.Fatal("the collector opened the state bucket")
	}
	collector.violated(t, "Publish", "$JS.API.STREAM.INFO.KV_"+names.StateBucket)
	direct := "$JS.API.DIRECT.GET.KV_" + names.StateBucket + ".$KV." + names.StateBucket + "." + key
	if msg, err := collector.nc.Request(direct, nil, time.Second); err == nil {
		t.Fatalf("the collector read state by direct get: %q", msg.Data)
	}
	collector.violated(t, "Publish", direct)
	for _, subj := range []string{"$KV." + names.StateBucket + ".>", "_INBOX.>", stream.InboxPrefix(stream.UserProjector) + ".>"} {
		sub, err := collector.nc.SubscribeSync(subj)
		if err != nil {
			t.Fatal(err)
		}
		collector.violated(t, "Subscription", subj)
		_ = sub.Unsubscribe()
	}
	// Nor may it write state.
	if _, err := collector.js.Publish(ctx, "$KV."+names.StateBucket+"."+key, []byte(`{}`)); err == nil {
		t.Fatal("the collector wrote state")
	}
	if e, err := kv.Get(ctx, key); err != nil || e.Revision() != 1 {
		t.Fatalf("state changed: %v %v", e, err)
	}
	t.Logf("collector refused: bucket info, direct get, $KV subscribe, other inboxes, state writes")
}

// TestAPIHasNoNATSWrites: the api's user cannot publish anything.
func TestAPIHasNoNATSWrites(t *testing.T) {
	ctx := context.Background()
	s, _ := secureWithStreams(t)
	api := connectAs(t, s, stream.UserAPI)
	for _, subj := range []string{stream.PublishSubject("visit", "c-1"), "customer.stage.x", stream.DeadLetterSubject("writer")} {
		if _, err := api.js.Publish(ctx, subj, []byte("x")); err == nil {
			t.Fatalf("the api published to %s", subj)
		}
		api.violated(t, "Publish", subj)
	}
	if _, err := api.js.Stream(ctx, stream.TouchpointStream); err != nil {
		t.Fatalf("the api may read stream info: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

// TestDeployPermissionsLoadInRealServerConfig: deploy/nats/permissions.conf
// included from a server configuration file, with the passwords in the
// environment, as a real nats-server reads it (the same parser).
func TestDeployPermissionsLoadInRealServerConfig(t *testing.T) {
	for _, u := range stream.Users() {
		t.Setenv(stream.PasswordVar(u), "pw-"+u)
	}
	// deploy/nats/nats-server.conf with its include uncommented, next to a
	// copy of permissions.conf: the documented setup.
	base, err := os.ReadFile("../../deploy/nats/nats-server.conf")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(base), "# include ./permissions.conf", "include ./permissions.conf", 1)
	if text == string(base) {
		t.Fatal("deploy/nats/nats-server.conf no longer shows the include")
	}
	perm, err := os.ReadFile(deployPermissions)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "nats-server.conf")
	if err := os.WriteFile(filepath.Join(dir, "permissions.conf"), perm, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]*server.User{}
	for _, u := range opts.Users {
		users[u.Username] = u
	}
	if len(users) != len(stream.Users()) {
		t.Fatalf("users %v", users)
	}
	w := users[stream.UserWriter]
	if w == nil || w.Password != "pw-writer" || w.Permissions == nil || w.Permissions.Publish == nil {
		t.Fatalf("writer %+v", w)
	}
	for _, s := range w.Permissions.Publish.Allow {
		if strings.HasPrefix(s, "touchpoint.") {
			t.Fatalf("writer may publish %s", s)
		}
	}
}

// TestCredentialsFromFile: JOURNEY_NATS_PASSWORD_FILE (first line) logs in;
// contradicting or incomplete settings are refused with what is wrong.
func TestCredentialsFromFile(t *testing.T) {
	s := natstest.StartSecure(t, stream.DefaultAccessNames())
	file := filepath.Join(t.TempDir(), "writer.password")
	if err := os.WriteFile(file, []byte(s.Passwords[stream.UserWriter]+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := s.Conn(stream.UserWriter)
	c.Password, c.PasswordFile = "", file
	nc, _, err := stream.Connect(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		t.Fatalf("writer with a password file: %v", err)
	}
	c.Password = "also"
	if _, _, err := stream.Connect(c, nil); !errors.Is(err, stream.ErrConn) || !strings.Contains(err.Error(), "not both") {
		t.Fatalf("password and file: %v", err)
	}
	if _, _, err := stream.Connect(stream.Conn{URL: s.ClientURL(), Password: "x"}, nil); !errors.Is(err, stream.ErrConn) || !strings.Contains(err.Error(), "JOURNEY_NATS_USER") {
		t.Fatalf("password without user: %v", err)
	}
	c = s.Conn(stream.UserWriter)
	c.PasswordFile, c.Password = filepath.Join(t.TempDir(), "missing"), ""
	if _, _, err := stream.Connect(c, nil); !errors.Is(err, stream.ErrConn) {
		t.Fatalf("missing password file: %v", err)
	}
}

// TestProjectorReadsACustomersHistory: to re-derive a customer after a
// correction the projector's user reads the customer's touchpoints one by
// one (direct get with a subject filter); the collector's may not.
func TestProjectorReadsACustomersHistory(t *testing.T) {
	ctx := context.Background()
	s, _ := secureWithStreams(t)
	collector := connectAs(t, s, stream.UserCollector)
	for _, c := range []string{"c-1", "c-2", "c-1"} {
		if _, err := collector.js.Publish(ctx, stream.PublishSubject("visit", c), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	projector := connectAs(t, s, stream.UserProjector)
	st, err := projector.js.Stream(ctx, stream.TouchpointStream)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for seq := uint64(1); ; {
		m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(stream.CustomerFilter("c-1")))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			t.Fatalf("the projector reads a customer's history: %v", err)
		}
		seqs = append(seqs, m.Sequence)
		seq = m.Sequence + 1
	}
	if len(seqs) != 2 || seqs[0] != 1 || seqs[1] != 3 {
		t.Fatalf("history of c-1 at %v, want 1 and 3", seqs)
	}
	cs, err := collector.js.Stream(ctx, stream.TouchpointStream)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(stream.CustomerFilter("c-1"))); err == nil {
		t.Fatal("the collector read a stored touchpoint")
	}
	collector.violated(t, "Publish", "$JS.API.DIRECT.GET."+stream.TouchpointStream)
}
