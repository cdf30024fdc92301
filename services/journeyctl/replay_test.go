package journeyctl_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/services/journeyctl"
)

// fixture is one hand-made touchpoint of the replay tests.
type fixture struct {
	source, id, customer string
	kind                 touchpoint.Kind
	at                   time.Time
}

var day0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// handFixture is twelve events over three customers (one whose id needs
// escaping in subjects), two sources and three days.
func handFixture() []fixture {
	d := func(days, hours int) time.Time {
		return day0.Add(time.Duration(days)*24*time.Hour + time.Duration(hours)*time.Hour)
	}
	return []fixture{
		{"shop", "e1", "acme.nl/1", touchpoint.KindVisit, d(0, 1)},
		{"shop", "e2", "acme.nl/1", touchpoint.KindOrder, d(0, 2)},
		{"crm", "e3", "acme.nl/1", touchpoint.KindComplaint, d(1, 1)},
		{"shop", "e4", "acme.nl/1", touchpoint.KindOrder, d(2, 5)},
		{"shop", "e5", "b-2", touchpoint.KindVisit, d(0, 3)},
		{"shop", "e6", "b-2", touchpoint.KindVisit, d(1, 3)},
		{"crm", "e7", "b-2", touchpoint.KindSurvey, d(1, 4)},
		{"shop", "e8", "b-2", touchpoint.KindOrder, d(1, 5)},
		{"shop", "e9", "c 3", touchpoint.KindQuote, d(0, 6)},
		{"crm", "e10", "c 3", touchpoint.KindVisit, d(1, 6)},
		{"shop", "e11", "c 3", touchpoint.KindOrder, d(1, 7)},
		{"shop", "e12", "c 3", touchpoint.KindVisit, d(2, 8)},
	}
}

func payloadOf(k touchpoint.Kind, n int) touchpoint.Typed {
	switch k {
	case touchpoint.KindOrder:
		return touchpoint.Order{OrderID: fmt.Sprint("o", n), Status: "placed", Amount: touchpoint.Amount{Cents: 2500}, Currency: "EUR"}
	case touchpoint.KindQuote:
		return touchpoint.Quote{QuoteID: fmt.Sprint("q", n), Status: "sent", Amount: touchpoint.Amount{Cents: 1000}, Currency: "EUR"}
	case touchpoint.KindComplaint:
		return touchpoint.Complaint{ComplaintID: fmt.Sprint("k", n), Status: "opened", Category: "delivery"}
	case touchpoint.KindSurvey:
		return touchpoint.Survey{SurveyID: "nps", Score: 9}
	}
	return touchpoint.Visit{Common: touchpoint.Common{Channel: "web"}}
}

// publishFixtures publishes events to TOUCHPOINTS and returns them.
func (e *env) publishFixtures(fs []fixture) []touchpoint.Event {
	e.t.Helper()
	ctx := context.Background()
	var futs []jetstream.PubAckFuture
	out := make([]touchpoint.Event, 0, len(fs))
	for i, f := range fs {
		ev, err := touchpoint.New(f.source, f.id, f.customer, f.at, payloadOf(f.kind, i))
		if err != nil {
			e.t.Fatal(err)
		}
		m, err := stream.NewFactMsg(&ev)
		if err != nil {
			e.t.Fatal(err)
		}
		fut, err := e.js.PublishMsgAsync(m)
		if err != nil {
			e.t.Fatal(err)
		}
		futs = append(futs, fut)
		out = append(out, ev)
	}
	select {
	case <-e.js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		e.t.Fatal("publishes not acknowledged")
	}
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			e.t.Fatal(err)
		}
	}
	_ = ctx
	return out
}

// manyFixtures is n events: customers cust/0..cust/19, every kind.
func manyFixtures(n int) []fixture {
	kinds := []touchpoint.Kind{touchpoint.KindVisit, touchpoint.KindOrder, touchpoint.KindQuote, touchpoint.KindSurvey}
	out := make([]fixture, n)
	for i := range out {
		out[i] = fixture{"load", fmt.Sprint("ev-", i), fmt.Sprint("cust/", i%20), kinds[i%len(kinds)], day0.Add(time.Duration(i) * time.Minute)}
	}
	return out
}

// storedPartitions reads back, straight from the stream, the partition the
// server stored each event of TOUCHPOINTS in, by (source, id).
func (e *env) storedPartitions() map[string]string {
	e.t.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, stream.TouchpointStream)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]string{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			e.t.Fatal(err)
		}
		p, _, _, ok := stream.ParseStoredSubject(m.Subject)
		if !ok {
			e.t.Fatalf("stored subject %q", m.Subject)
		}
		out[m.Header.Get("ce-source")+"/"+m.Header.Get("ce-id")] = strconv.Itoa(p)
	}
	return out
}

// replayReport runs journeyctl like run, which must exit 0, and decodes its
// --json report.
func (e *env) replayReport(args ...string) journeyctl.ReplayReport {
	e.t.Helper()
	code, out, _ := e.run(args...)
	if code != 0 {
		e.t.Fatalf("exit %d", code)
	}
	return decodeReport(e.t, out)
}

func decodeReport(t *testing.T, out string) journeyctl.ReplayReport {
	t.Helper()
	var r journeyctl.ReplayReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("replay --json output is not a report: %v\n%s", err, out)
	}
	return r
}

// The dry run counts a hand-made selection exactly: per kind by hand, per
// partition against the partitions the server stored the events in; it
// sends nothing and records nothing.
func TestReplayDryRunCountsHandFixture(t *testing.T) {
	t.Parallel() // its own NATS server and database
	e := newEnv(t)
	e.publishFixtures(handFixture())
	parts := e.storedPartitions()

	// Customers acme.nl/1 and "c 3", kinds order and visit, source shop,
	// event time [day 0 02:00, day 2 06:00): e2, e4 and e11 (orders);
	// visit e1 is before the range, visit e12 after it, visit e10 is crm's.
	r := e.replayReport("replay", "--dry-run", "--json", "--customer", "acme.nl/1", "--customer", "c 3", "--kind", "order", "--kind", "visit",
		"--source", "shop", "--from", day0.Add(2*time.Hour).Format(time.RFC3339), "--to", day0.Add(54*time.Hour).Format(time.RFC3339))
	wantParts := map[string]int{}
	for _, k := range []string{"shop/e2", "shop/e4", "shop/e11"} {
		wantParts[parts[k]]++
	}
	t.Logf("selected %d of %d read; by kind %v; by partition %v (want %v); filters %v", r.Counts.Selected, r.Counts.Scanned, r.Counts.ByKind, r.Counts.ByPartition, wantParts, r.Filters)
	if r.Counts.Selected != 3 || len(r.Counts.ByKind) != 1 || r.Counts.ByKind["order"] != 3 {
		t.Errorf("counts %+v, want 3 orders", r.Counts)
	}
	if fmt.Sprint(r.Counts.ByPartition) != fmt.Sprint(wantParts) {
		t.Errorf("by partition %v, want %v", r.Counts.ByPartition, wantParts)
	}
	// The subject filters let the server send only the two customers'
	// orders and visits: e1 e2 e4 (acme) and e10 e12 e11 (c 3).
	if r.Counts.Scanned != 6 {
		t.Errorf("read %d messages, want the 6 the filters match", r.Counts.Scanned)
	}

	// Everything: all twelve, per kind by hand.
	r = e.replayReport("replay", "--dry-run", "--json")
	want := map[string]int{"visit": 5, "order": 4, "complaint": 1, "survey": 1, "quote": 1}
	if r.Counts.Selected != 12 || fmt.Sprint(r.Counts.ByKind) != fmt.Sprint(want) {
		t.Errorf("all: %+v, want 12: %v", r.Counts, want)
	}
	all := map[string]int{}
	for _, p := range parts {
		all[p]++
	}
	if fmt.Sprint(r.Counts.ByPartition) != fmt.Sprint(all) {
		t.Errorf("all by partition %v, want %v", r.Counts.ByPartition, all)
	}

	// Stream time: only what was stored after a mark.
	time.Sleep(50 * time.Millisecond)
	mark := time.Now().UTC()
	time.Sleep(50 * time.Millisecond)
	e.publishFixtures([]fixture{{"late", "l1", "b-2", touchpoint.KindOrder, day0}, {"late", "l2", "d", touchpoint.KindVisit, day0}})
	code, out, _ := e.run("replay", "--dry-run", "--json", "--since", mark.Format(time.RFC3339Nano))
	r = decodeReport(t, out)
	if code != 0 || r.Counts.Selected != 2 || r.Counts.ByKind["order"] != 1 || r.Counts.ByKind["visit"] != 1 {
		t.Errorf("--since %s: exit %d, %+v, want the 2 late events", mark, code, r.Counts)
	}
	code, out, _ = e.run("replay", "--dry-run", "--json", "--until", mark.Format(time.RFC3339Nano), "--kind", "order")
	r = decodeReport(t, out)
	if code != 0 || r.Counts.Selected != 4 {
		t.Errorf("--until %s --kind order: exit %d, %+v, want the 4 early orders", mark, code, r.Counts)
	}

	// The text form shows both tables; nothing was sent or recorded.
	code, out, _ = e.run("replay", "--dry-run", "--kind", "survey")
	if code != 0 || !strings.Contains(out, "KIND") || !strings.Contains(out, "PARTITION") || !strings.Contains(out, "survey  1") {
		t.Errorf("text dry run: exit %d\n%s", code, out)
	}
	// One selection given in another order is the same replay.
	_, a, _ := e.run("replay", "--dry-run", "--json", "--to", "warehouse", "--kind", "order", "--kind", "visit", "--customer", "b-2", "--customer", "acme.nl/1")
	_, b, _ := e.run("replay", "--dry-run", "--json", "--kind", "visit", "--customer", "acme.nl/1", "--kind", "order", "--customer", "b-2", "--to-warehouse")
	_, c, _ := e.run("replay", "--dry-run", "--json", "--kind", "visit", "--customer", "acme.nl/1", "--kind", "order", "--to-warehouse")
	if ra, rb, rc := decodeReport(t, a), decodeReport(t, b), decodeReport(t, c); ra.ReplayID == "" || ra.ReplayID != rb.ReplayID || ra.ReplayID == rc.ReplayID {
		t.Errorf("replay ids %q %q (same selection) %q (another)", ra.ReplayID, rb.ReplayID, rc.ReplayID)
	}
	if n := e.streamMsgs(stream.ReplayStream); n != 0 {
		t.Errorf("a dry run put %d messages on REPLAY", n)
	}
	if _, err := e.js.KeyValue(context.Background(), journeyctl.OpsBucket); err == nil {
		t.Error("a dry run recorded a replay")
	}
}

// Bad selections and targets are refused with exit 2 and say why.
func TestReplayRefusesBadInput(t *testing.T) {
	t.Parallel() // its own NATS server and database
	e := newEnv(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"replay", "--kind", "order"}, "give a target"},
		{[]string{"replay", "--dry-run", "--kind", "purchase"}, "not a touchpoint kind"},
		{[]string{"replay", "--to-subject", "touchpoint.again"}, "journey's own touchpoint subjects"},
		{[]string{"replay", "--to-subject", "down.*"}, "not a subject prefix"},
		{[]string{"replay", "--to", "warehouse", "--to-subject", "down"}, "give one target"},
		{[]string{"replay", "--to", "tomorrow"}, "neither an RFC 3339 time"},
		{[]string{"replay", "--dry-run", "--from", "2026-03-02T00:00:00Z", "--to", "2026-03-01T00:00:00Z"}, "must be before"},
		{[]string{"replay", "--resume", "r-1", "--kind", "order"}, "--resume takes the selection"},
		{[]string{"replay", "--to", "warehouse", "--rate=-1"}, "--rate must be"},
	} {
		code, _, stderr := e.run(tc.args...)
		if code != journeyctl.ExitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 saying %q", tc.args, code, stderr, tc.want)
		}
	}
	if code, _, _ := e.run("replay", "--resume", "r-none"); code != journeyctl.ExitNotFound {
		t.Errorf("--resume of an unknown id: exit %d, want %d", code, journeyctl.ExitNotFound)
	}
}

// downstream creates a stream capturing prefix.> and returns a reader of
// every message it holds, by (source, id).
func (e *env) downstream(name, prefix string) func() (msgs int, byID map[string][]jetstream.RawStreamMsg) {
	e.t.Helper()
	ctx := context.Background()
	s, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{prefix + ".>"}, Duplicates: 2 * time.Minute})
	if err != nil {
		e.t.Fatal(err)
	}
	return func() (int, map[string][]jetstream.RawStreamMsg) {
		info, err := s.Info(ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		by := map[string][]jetstream.RawStreamMsg{}
		for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
			m, err := s.GetMsg(ctx, seq)
			if err != nil {
				e.t.Fatal(err)
			}
			k := m.Header.Get("ce-source") + "/" + m.Header.Get("ce-id")
			by[k] = append(by[k], *m)
		}
		return int(info.State.Msgs), by
	}
}

// A subject target receives exactly the selected events, as CloudEvents
// with their original source, id, type, subject, time and data, the replay
// marker, and the original partition/kind/customer key in the subject.
// Running the command again sends nothing more; the audit has the counts.
func TestReplayToSubjectSendsExactlyTheSelection(t *testing.T) {
	t.Parallel() // its own NATS server and database
	e := newEnv(t)
	evs := e.publishFixtures(handFixture())
	read := e.downstream("DOWN", "down.v1")
	args := []string{"replay", "--json", "--to-subject", "down.v1", "--kind", "order", "--kind", "survey", "--from", day0.Add(time.Hour).Format(time.RFC3339)}
	r := e.replayReport(args...)
	want := map[string]touchpoint.Event{}
	for _, ev := range evs {
		if k := ev.Kind(); (k == touchpoint.KindOrder || k == touchpoint.KindSurvey) && !ev.Time.Before(day0.Add(time.Hour)) {
			want[ev.Source+"/"+ev.ID] = ev
		}
	}
	n, got := read()
	t.Logf("replay %s: selected %d, published %d; downstream holds %d messages, %d unique (source, id); want %d", r.ReplayID, r.Counts.Selected, r.Counts.Published, n, len(got), len(want))
	if n != len(want) || len(got) != len(want) || r.Counts.Published != len(want) || r.State != "done" {
		t.Fatalf("downstream holds %d messages (%d unique), report %+v; want %d", n, len(got), r, len(want))
	}
	for k, ev := range want {
		ms := got[k]
		if len(ms) != 1 {
			t.Errorf("%s: %d copies", k, len(ms))
			continue
		}
		m := ms[0]
		back, err := stream.DecodeMsg(m.Header, m.Data)
		if err != nil {
			t.Fatalf("%s: not a CloudEvent: %v", k, err)
		}
		_, kind, key, _ := stream.ParseStoredSubject("touchpoint." + strings.TrimPrefix(m.Subject, "down.v1."))
		if back.Source != ev.Source || back.ID != ev.ID || back.Type != ev.Type || back.Subject != ev.Subject || !back.Time.Equal(ev.Time) ||
			string(back.Data) != string(ev.Data) || back.Extensions["replay"] != r.ReplayID || kind != ev.Kind() || key != stream.CustomerKey(ev.Subject) {
			t.Errorf("%s: copy on %s is %+v, want %+v with replay=%s", k, m.Subject, back, ev, r.ReplayID)
		}
	}

	// The same command again: the replay is done, nothing more is sent.
	code, out, _ := e.run(args...)
	if n2, _ := read(); code != 0 || n2 != n || decodeReport(t, out).ReplayID != r.ReplayID {
		t.Errorf("second run: exit %d, downstream %d messages (was %d)", code, n2, n)
	}
	// A prefix no stream captures: a clear error, exit 1.
	code, _, stderr := e.run("replay", "--to-subject", "nowhere.v1", "--kind", "order")
	if code != journeyctl.ExitFailure || !strings.Contains(stderr, "no JetStream stream captures nowhere.v1.") {
		t.Errorf("a prefix without a stream: exit %d, %q", code, stderr)
	}
	// The audit: an ops event and a row with the actor, selection and counts.
	var actor, sel, counts string
	if err := e.db.Conn.QueryRow(context.Background(), "SELECT actor, selection, counts FROM ops_audit WHERE action = 'replay' AND outcome = 'ok'").Scan(&actor, &sel, &counts); err != nil {
		t.Fatal(err)
	}
	t.Logf("audit: actor %s selection %s counts %s", actor, sel, counts)
	if !strings.HasPrefix(actor, "test:") || !strings.Contains(sel, `"replay_id":"`+r.ReplayID+`"`) || !strings.Contains(sel, `"kinds":["order","survey"]`) ||
		!strings.Contains(counts, fmt.Sprintf(`"published":%d`, len(want))) {
		t.Errorf("audit row: %s %s %s", actor, sel, counts)
	}
	ops, err := e.js.Stream(context.Background(), journeyctl.OpsStream)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := ops.GetLastMsgForSubject(context.Background(), "ops.replay"); err != nil || m.Header.Get("ce-type") != journeyctl.OpsType("replay") {
		t.Errorf("ops event: %v %v", m, err)
	}
}

// --rate bounds the replay's speed: 40 events at 20/s take at least ~2 s.
func TestReplayRateLimit(t *testing.T) {
	e := newEnv(t)
	e.publishFixtures(manyFixtures(40))
	read := e.downstream("DOWN", "down")
	start := time.Now()
	code, _, _ := e.run("replay", "--to-subject", "down", "--rate", "20")
	el := time.Since(start)
	n, _ := read()
	t.Logf("40 events at --rate 20: %s (%.1f events/s), downstream %d", el.Round(time.Millisecond), 40/el.Seconds(), n)
	if code != 0 || n != 40 {
		t.Fatalf("exit %d, downstream %d", code, n)
	}
	// The limiter's burst is 1: 40 events need 39 intervals of 50 ms.
	if el < 1900*time.Millisecond {
		t.Errorf("40 events at 20/s took %s, want at least 1.9s", el)
	}
}

var buildOnce = map[string]*sync.Once{}
var buildMu sync.Mutex
var built = map[string]string{}

// buildCmd builds one of the module's commands once per test binary.
func buildCmd(t *testing.T, pkg string) string {
	t.Helper()
	buildMu.Lock()
	o, ok := buildOnce[pkg]
	if !ok {
		o = &sync.Once{}
		buildOnce[pkg] = o
	}
	buildMu.Unlock()
	o.Do(func() {
		dir, err := os.MkdirTemp("", "journeyctl-test-")
		if err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(dir, filepath.Base(pkg))
		cmd := exec.Command("go", "build", "-o", bin, "github.com/klantreis/journey/"+pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
		buildMu.Lock()
		built[pkg] = bin
		buildMu.Unlock()
	})
	buildMu.Lock()
	defer buildMu.Unlock()
	if built[pkg] == "" {
		t.Fatalf("%s was not built", pkg)
	}
	return built[pkg]
}

// childEnv is the environment of a journeyctl or service child process.
func (e *env) childEnv(extra ...string) []string { return childEnv(e.nats, e.ch, extra...) }

// startCtl starts the journeyctl binary bin with args as a child process
// on the test's stores (extraEnv added to its environment), and returns
// it and its stderr.
func (e *env) startCtl(bin string, args []string, extraEnv ...string) (*exec.Cmd, *strings.Builder) {
	e.t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = e.childEnv(extraEnv...)
	stderr := &strings.Builder{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	return cmd, stderr
}

// kill -9 of journeyctl mid-replay, then the same command again: the
// target holds every selected event exactly once.
func TestReplayResumesAfterKill9(t *testing.T) {
	e := newEnv(t)
	const n = 3000
	e.publishFixtures(manyFixtures(n))
	read := e.downstream("DOWN", "down")
	bin := buildCmd(t, "services/journeyctl/cmd/journeyctl")
	args := []string{"--actor", "test:kill", "replay", "--to-subject", "down", "--rate", "300", "--checkpoint", "200ms", "--id", "kill-test"}
	cmd, _ := e.startCtl(bin, args)
	// Kill it once a third is out, between two checkpoints. The rate leaves
	// 7 s for that: at 1000/s a loaded CI machine once saw the replay done.
	waitFor(t, 30*time.Second, "a third of the replay", func() bool { m, _ := read(); return m >= n/3 })
	time.Sleep(100 * time.Millisecond)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	atKill, _ := read()
	var st journeyctl.ReplayState
	e.opsRecord("replay.kill-test", &st)
	t.Logf("killed with SIGKILL: downstream held %d, recorded position %d (state %s, published %d)", atKill, st.LastSeq, st.State, st.Counts.Published)
	if st.State != "running" || atKill >= n {
		t.Fatalf("the kill came too late: state %s, downstream %d", st.State, atKill)
	}

	// The same command again (without the rate, to finish quickly).
	again := exec.Command(bin, "--actor", "test:kill", "--json", "replay", "--to-subject", "down", "--checkpoint", "200ms", "--id", "kill-test")
	again.Env = e.childEnv()
	out, err := again.Output()
	if err != nil {
		// The rate is not part of the slice, so the id still matches.
		t.Fatalf("resume: %v\n%s", err, out)
	}
	r := decodeReport(t, string(out))
	total, byID := read()
	dups := 0
	for _, ms := range byID {
		dups += len(ms) - 1
	}
	t.Logf("resumed (%d resume): published %d, duplicates dropped by the window %d; downstream %d messages, %d unique (source, id), %d doubled",
		r.Resumes, r.Counts.Published, r.Counts.Duplicates, total, len(byID), dups)
	if len(byID) != n || total != n || dups != 0 || r.State != "done" || r.Resumes != 1 {
		t.Errorf("after kill and resume: %d messages, %d unique, %d doubled, report %+v; want %d once each", total, len(byID), dups, r, n)
	}
	if r.Counts.Selected != n {
		t.Errorf("report says %d selected, want %d", r.Counts.Selected, n)
	}
}

// proc is a service child process.
type proc struct {
	cmd *exec.Cmd
	log string
}

func (e *env) startService(name, bin string, extra ...string) *proc {
	e.t.Helper()
	log := filepath.Join(e.t.TempDir(), name+".log")
	f, err := os.Create(log)
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = e.childEnv(extra...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	p := &proc{cmd: cmd, log: log}
	e.t.Cleanup(func() {
		p.stop()
		f.Close()
		if e.t.Failed() {
			b, _ := os.ReadFile(log)
			e.t.Logf("%s log:\n%s", name, b)
		}
	})
	return p
}

// stop sends SIGTERM and waits for the process to drain and exit.
func (p *proc) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(40 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// A replay to the warehouse adds no row for the events already stored and
// fills in the ones that are missing, with their original stream
// sequences; the live writer catching up afterwards adds nothing either.
func TestReplayToWarehouseFillsOnlyMissingRows(t *testing.T) {
	t.Parallel() // its own NATS server and database
	e := newEnv(t)
	writerBin := buildCmd(t, "services/writer/cmd/journey-writer")
	const stored, missing = 300, 120
	all := manyFixtures(stored + missing)
	e.publishFixtures(all[:stored])
	live := e.startService("writer", writerBin, "JOURNEY_WRITER_ADDR=127.0.0.1:0", "JOURNEY_WRITER_BATCH_AGE=50ms")
	rows := func() uint64 { return e.count("SELECT count() FROM events") }
	waitFor(t, 60*time.Second, "the live writer to store the first events", func() bool { return rows() == stored })
	live.stop()
	// These reach the stream while no writer runs: missing in the warehouse.
	e.publishFixtures(all[stored:])
	before := rows()

	replayWriter := e.startService("writer-replay", writerBin, "JOURNEY_WRITER_ADDR=127.0.0.1:0", "JOURNEY_WRITER_INPUT=replay", "JOURNEY_WRITER_BATCH_AGE=50ms")
	waitFor(t, 30*time.Second, "the replay writer's consumer", e.hasConsumer(stream.ReplayStream, "writer-replay"))
	r := e.replayReport("replay", "--json", "--to", "warehouse")
	waitFor(t, 60*time.Second, "the replay writer to drain", func() bool {
		info, ok := e.consumerInfo(stream.ReplayStream, "writer-replay")
		return ok && info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= uint64(r.Counts.Published)
	})
	after := rows()
	uniq := e.count("SELECT uniqExact(source, id) FROM events")
	minSeq := e.count("SELECT min(stream_seq) FROM events WHERE toUInt64(substring(id, 4)) >= ?", uint64(stored))
	t.Logf("warehouse: %d rows before the replay (%d stored, %d missing), replay published %d copies, %d rows after, %d unique (source, id); the filled rows' lowest stream_seq %d",
		before, stored, missing, r.Counts.Published, after, uniq, minSeq)
	if before != stored || after != stored+missing || uniq != stored+missing {
		t.Errorf("rows %d -> %d (%d unique), want %d -> %d", before, after, uniq, stored, stored+missing)
	}
	if minSeq != stored+1 {
		t.Errorf("filled rows start at stream_seq %d, want the original %d", minSeq, stored+1)
	}
	if left := e.streamMsgs(stream.ReplayStream); left != 0 {
		t.Errorf("REPLAY still holds %d copies the writer acknowledged", left)
	}
	replayWriter.stop()

	// The live writer now reads the missing events from TOUCHPOINTS: all
	// stored already, so no row is added.
	e.startService("writer-again", writerBin, "JOURNEY_WRITER_ADDR=127.0.0.1:0", "JOURNEY_WRITER_BATCH_AGE=50ms")
	waitFor(t, 60*time.Second, "the live writer to catch up", e.drained(stream.TouchpointStream, "writer"))
	if n := rows(); n != stored+missing {
		t.Errorf("after the live writer caught up: %d rows, want %d", n, stored+missing)
	}
	t.Logf("live writer caught up: %d rows", rows())
}

// drained waits until a durable consumer has nothing pending or unacked.
func (e *env) drained(streamName, durable string) func() bool {
	return func() bool {
		info, ok := e.consumerInfo(streamName, durable)
		return ok && info.NumPending == 0 && info.NumAckPending == 0
	}
}

// hasConsumer waits until a durable consumer exists.
func (e *env) hasConsumer(streamName, durable string) func() bool {
	return func() bool {
		_, ok := e.consumerInfo(streamName, durable)
		return ok
	}
}

// consumerInfo is a durable consumer's info; false while its stream or
// the consumer is not there (yet).
func (e *env) consumerInfo(streamName, durable string) (*jetstream.ConsumerInfo, bool) {
	s, err := e.js.Stream(context.Background(), streamName)
	if err != nil {
		return nil, false
	}
	c, err := s.Consumer(context.Background(), durable)
	if err != nil {
		return nil, false
	}
	info, err := c.Info(context.Background())
	return info, err == nil
}

// kvState is each customer key's revision and value in a bucket.
func (e *env) kvState(bucket string) map[string]jetstream.KeyValueEntry {
	e.t.Helper()
	ctx := context.Background()
	kv, err := e.js.KeyValue(ctx, bucket)
	if err != nil {
		e.t.Fatal(err)
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]jetstream.KeyValueEntry{}
	for k := range keys.Keys() {
		v, err := kv.Get(ctx, k)
		if err != nil {
			e.t.Fatal(err)
		}
		out[k] = v
	}
	return out
}

func (e *env) streamMsgs(name string) uint64 {
	e.t.Helper()
	return streamMsgs(e.t, e.js, name)
}

// streamMsgs is how many messages a stream holds.
func streamMsgs(t *testing.T, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// A replay to the projector (a second projector instance reading the
// replay stream beside the live one) changes no state the live projector
// already derived: no state written, no derived event, no transition row.
// A customer whose state was lost gets it back, the same as before.
func TestReplayToProjectorIsANoOpForHeldStatesAndRestoresALostOne(t *testing.T) {
	t.Parallel() // its own NATS server and database
	e := newEnv(t)
	bin := buildCmd(t, "services/projector/cmd/journey-projector")
	const n = 400
	e.publishFixtures(manyFixtures(n))
	e.startService("projector", bin, "JOURNEY_PROJECTOR_ADDR=127.0.0.1:0", "JOURNEY_PROJECTOR_WAREHOUSE_WAIT=100ms")
	for p := range 8 {
		waitFor(t, 60*time.Second, "the live projector", e.drained(stream.TouchpointStream, fmt.Sprintf("journey-projector-p%d", p)))
	}
	transitions := func() uint64 { return e.count("SELECT count() FROM stage_transitions") }
	waitFor(t, 30*time.Second, "transition rows", func() bool { return transitions() > 0 })
	time.Sleep(1500 * time.Millisecond) // the outbox loader's last insert
	states, derived, rows := e.kvState("journey_customers"), e.streamMsgs(stream.DerivedStream), transitions()

	replayProj := e.startService("projector-replay", bin, "JOURNEY_PROJECTOR_ADDR=127.0.0.1:0", "JOURNEY_PROJECTOR_INPUT=replay", "JOURNEY_PROJECTOR_WAREHOUSE_WAIT=100ms")
	waitFor(t, 30*time.Second, "the replay projector's consumers", e.hasConsumer(stream.ReplayStream, "journey-projector-replay-p7"))
	r := e.replayReport("replay", "--json", "--to", "projector")
	for p := range 8 {
		waitFor(t, 60*time.Second, "the replay projector", e.drained(stream.ReplayStream, fmt.Sprintf("journey-projector-replay-p%d", p)))
	}
	time.Sleep(1500 * time.Millisecond)
	after := e.kvState("journey_customers")
	rewritten := 0
	for k, v := range states {
		if a, ok := after[k]; !ok || a.Revision() != v.Revision() {
			rewritten++
		}
	}
	t.Logf("replayed %d events to the projector: %d of %d customer states rewritten; derived events %d -> %d; stage_transitions %d -> %d",
		r.Counts.Published, rewritten, len(states), derived, e.streamMsgs(stream.DerivedStream), rows, transitions())
	if r.Counts.Published != n || rewritten != 0 || len(after) != len(states) || e.streamMsgs(stream.DerivedStream) != derived || transitions() != rows {
		t.Fatalf("a replay of what the projector holds changed something")
	}

	// One customer's state is lost (its key purged from the bucket's
	// stream); a replay of that customer brings it back as it was. A
	// projector trusts the states it caches, so the replay instance is
	// started after the loss (docs/operations.md).
	replayProj.stop()
	key := stream.CustomerKey("cust/3")
	kvs, err := e.js.Stream(context.Background(), "KV_journey_customers")
	if err != nil {
		t.Fatal(err)
	}
	if err := kvs.Purge(context.Background(), jetstream.WithPurgeSubject("$KV.journey_customers."+key)); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.kvState("journey_customers")[key]; ok {
		t.Fatal("the state was not purged")
	}
	e.startService("projector-replay-2", bin, "JOURNEY_PROJECTOR_ADDR=127.0.0.1:0", "JOURNEY_PROJECTOR_INPUT=replay", "JOURNEY_PROJECTOR_WAREHOUSE_WAIT=100ms")
	code, out, _ := e.run("replay", "--json", "--to", "projector", "--customer", "cust/3")
	r = decodeReport(t, out)
	if code != 0 || r.Counts.Published != n/20 {
		t.Fatalf("exit %d, published %d, want %d", code, r.Counts.Published, n/20)
	}
	var got jetstream.KeyValueEntry
	waitFor(t, 60*time.Second, "the state to come back", func() bool {
		v, ok := e.kvState("journey_customers")[key]
		got = v
		return ok
	})
	t.Logf("lost state of cust/3 restored from %d events: %d bytes (was %d), equal: %v", r.Counts.Published, len(got.Value()), len(states[key].Value()), string(got.Value()) == string(states[key].Value()))
	if string(got.Value()) != string(states[key].Value()) {
		t.Errorf("restored state differs:\n got %s\nwant %s", got.Value(), states[key].Value())
	}
}

// SIGINT stops a replay cleanly: exit 1 saying how to continue, the
// position recorded, a failed audit row; the same command then finishes it.
func TestReplayInterruptRecordsPositionAndResumes(t *testing.T) {
	t.Parallel() // its own NATS server and database
	e := newEnv(t)
	const n = 1000
	e.publishFixtures(manyFixtures(n))
	read := e.downstream("DOWN", "down")
	bin := buildCmd(t, "services/journeyctl/cmd/journeyctl")
	args := []string{"--actor", "test:int", "replay", "--to-subject", "down", "--id", "int-test"}
	cmd, stderr := e.startCtl(bin, append(args, "--rate", "400"))
	waitFor(t, 30*time.Second, "a quarter of the replay", func() bool { m, _ := read(); return m >= n/4 })
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	atStop, _ := read()
	var st journeyctl.ReplayState
	e.opsRecord("replay.int-test", &st)
	t.Logf("SIGINT: %v; downstream %d, recorded position %d (published %d)", err, atStop, st.LastSeq, st.Counts.Published)
	if cmd.ProcessState.ExitCode() != journeyctl.ExitFailure || !strings.Contains(stderr.String(), "replay interrupted") {
		t.Errorf("exit %d, stderr %q", cmd.ProcessState.ExitCode(), stderr.String())
	}
	// The position covers every acknowledged copy, less at most the
	// window of publishes that were in flight.
	if st.State != "running" || int(st.LastSeq) > atStop || atStop-int(st.LastSeq) > 256 || st.Counts.Published != int(st.LastSeq) {
		t.Errorf("recorded %+v with %d downstream", st, atStop)
	}
	var outcome string
	if err := e.db.Conn.QueryRow(context.Background(), "SELECT outcome FROM ops_audit WHERE action = 'replay' AND actor = 'test:int'").Scan(&outcome); err != nil || outcome != "failed" {
		t.Errorf("audit of the interrupted run: %q %v", outcome, err)
	}
	again := exec.Command(bin, args...)
	again.Env = e.childEnv()
	if out, err := again.CombinedOutput(); err != nil {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	total, byID := read()
	t.Logf("resumed: downstream %d messages, %d unique (source, id)", total, len(byID))
	if total != n || len(byID) != n {
		t.Errorf("downstream %d messages, %d unique, want %d", total, len(byID), n)
	}
}

// kill -9 of journeyctl mid-replay to the warehouse, then the same command
// again: the events table holds each selected event once.
func TestReplayToWarehouseResumesAfterKill9(t *testing.T) {
	e := newEnv(t)
	const n = 2000
	e.publishFixtures(manyFixtures(n))
	writerBin := buildCmd(t, "services/writer/cmd/journey-writer")
	ctlBin := buildCmd(t, "services/journeyctl/cmd/journeyctl")
	e.startService("writer-replay", writerBin, "JOURNEY_WRITER_ADDR=127.0.0.1:0", "JOURNEY_WRITER_INPUT=replay", "JOURNEY_WRITER_BATCH_AGE=50ms")
	rows := func() uint64 { return e.count("SELECT count() FROM events") }
	args := []string{"--actor", "test:kill", "replay", "--to", "warehouse", "--checkpoint", "200ms"}
	cmd := exec.Command(ctlBin, append(args, "--rate", "800")...)
	cmd.Env = e.childEnv()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "a quarter of the rows", func() bool { return rows() >= n/4 })
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	atKill := rows()
	again := exec.Command(ctlBin, append([]string{"--json"}, args...)...)
	again.Env = e.childEnv()
	out, err := again.Output()
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	r := decodeReport(t, string(out))
	waitFor(t, 60*time.Second, "the replay writer to drain", e.drained(stream.ReplayStream, "writer-replay"))
	total, uniq := rows(), e.count("SELECT uniqExact(source, id) FROM events")
	t.Logf("killed with SIGKILL at %d rows; resumed: published %d, duplicates dropped %d; events holds %d rows, %d unique (source, id) of %d selected",
		atKill, r.Counts.Published, r.Counts.Duplicates, total, uniq, n)
	if atKill >= n || total != n || uniq != n || r.Resumes != 1 || r.Counts.Selected != n {
		t.Errorf("rows %d (%d unique), report %+v; want %d once each after one resume", total, uniq, r, n)
	}
}
