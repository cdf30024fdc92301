package stream_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/natsserver/natstest"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
)

// connect returns a JetStream context on a server of the test's own: the
// stream names are fixed by the topology, and every test starts from none.
func connect(t *testing.T) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(natstest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return js
}

// ensure creates fresh streams with topo for this test.
func ensure(t *testing.T, topo stream.Topology) jetstream.JetStream {
	t.Helper()
	js := connect(t)
	if err := topo.Ensure(context.Background(), js); err != nil {
		t.Fatal(err)
	}
	return js
}

func event(t *testing.T, source, id, customer string, p touchpoint.Typed) touchpoint.Event {
	t.Helper()
	e, err := touchpoint.New(source, id, customer, time.Now(), p)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func visit(t *testing.T, source, id, customer string) touchpoint.Event {
	return event(t, source, id, customer, touchpoint.Visit{Common: touchpoint.Common{Channel: "web"}})
}

func publish(t *testing.T, js jetstream.JetStream, e touchpoint.Event) *jetstream.PubAck {
	t.Helper()
	m, err := stream.NewFactMsg(&e)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := js.PublishMsg(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	return ack
}

// fetchAll reads every stored message that matches the filters.
func fetchAll(t *testing.T, js jetstream.JetStream, streamName string, filters ...string) []jetstream.Msg {
	t.Helper()
	ctx := context.Background()
	c, err := js.OrderedConsumer(ctx, streamName, jetstream.OrderedConsumerConfig{FilterSubjects: filters})
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.Msg
	for {
		// NoWait: the server answers with what is stored and ends the
		// batch at once, instead of holding the pull open until it expires.
		batch, err := c.FetchNoWait(500)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			out = append(out, m)
			n++
		}
		if n == 0 {
			return out
		}
	}
}

func decodeIDs(t *testing.T, msgs []jetstream.Msg) []string {
	t.Helper()
	ids := make([]string, 0, len(msgs))
	for _, m := range msgs {
		e, err := stream.DecodeMsg(m.Headers(), m.Data())
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	return ids
}

func TestEnsureIsIdempotentAndUpdates(t *testing.T) {
	ctx := context.Background()
	topo := stream.DefaultTopology()
	js := ensure(t, topo)
	if err := topo.Ensure(ctx, js); err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	publish(t, js, visit(t, "shop", "e1", "c1"))

	for _, want := range []jetstream.StreamConfig{topo.TouchpointConfig(), topo.DerivedConfig(), topo.DeadLetterConfig()} {
		s, err := js.Stream(ctx, want.Name)
		if err != nil {
			t.Fatal(err)
		}
		got := s.CachedInfo().Config
		if got.Duplicates != want.Duplicates || got.Storage != jetstream.FileStorage || got.Replicas != 1 ||
			fmt.Sprint(got.Subjects) != fmt.Sprint(want.Subjects) {
			t.Fatalf("%s: config %+v", want.Name, got)
		}
	}

	// A changed setting is applied to the existing stream, data kept.
	topo.DuplicateWindow = 5 * time.Minute
	topo.Partitions = 16
	topo.DerivedMaxAge = 48 * time.Hour
	if err := topo.Ensure(ctx, js); err != nil {
		t.Fatalf("Ensure with changes: %v", err)
	}
	s, err := js.Stream(ctx, stream.TouchpointStream)
	if err != nil {
		t.Fatal(err)
	}
	info := s.CachedInfo()
	if info.Config.Duplicates != 5*time.Minute {
		t.Fatalf("duplicate window not updated: %s", info.Config.Duplicates)
	}
	if info.Config.SubjectTransform == nil || info.Config.SubjectTransform.Destination != topo.TouchpointConfig().SubjectTransform.Destination {
		t.Fatalf("transform not updated: %+v", info.Config.SubjectTransform)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("update lost data: %d msgs", info.State.Msgs)
	}
	d, err := js.Stream(ctx, stream.DerivedStream)
	if err != nil {
		t.Fatal(err)
	}
	if d.CachedInfo().Config.MaxAge != 48*time.Hour {
		t.Fatalf("derived max age not updated: %s", d.CachedInfo().Config.MaxAge)
	}
	// New events land in one of 16 partitions now.
	publish(t, js, visit(t, "shop", "e2", "c2"))
	msgs := fetchAll(t, js, stream.TouchpointStream, stream.CustomerFilter("c2"))
	if len(msgs) != 1 {
		t.Fatalf("got %d", len(msgs))
	}
	if p, _, _, ok := stream.ParseStoredSubject(msgs[0].Subject()); !ok || p < 0 || p >= 16 {
		t.Fatalf("stored subject %q", msgs[0].Subject())
	}
}

func TestEnsureRejectsBadTopology(t *testing.T) {
	js := connect(t)
	for _, topo := range []stream.Topology{
		{Partitions: 0, DuplicateWindow: time.Minute, Replicas: 1},
		{Partitions: 8, DuplicateWindow: 0, Replicas: 1},
		{Partitions: 8, DuplicateWindow: time.Minute, Replicas: 2},
	} {
		if err := topo.Ensure(context.Background(), js); !errors.Is(err, stream.ErrTopology) {
			t.Errorf("%+v: want ErrTopology, got %v", topo, err)
		}
	}
}

func TestPublishDedup(t *testing.T) {
	ctx := context.Background()
	topo := stream.DefaultTopology()
	topo.DuplicateWindow = time.Second
	js := ensure(t, topo)

	e := visit(t, "shop", "e-1", "c-1")
	first := publish(t, js, e)
	if first.Duplicate {
		t.Fatal("first publish flagged duplicate")
	}
	again := publish(t, js, e)
	if !again.Duplicate || again.Sequence != first.Sequence {
		t.Fatalf("resend: %+v, first %+v", again, first)
	}
	// Same id from another source is another event.
	other := publish(t, js, visit(t, "crm", "e-1", "c-1"))
	if other.Duplicate {
		t.Fatal("same id, other source flagged duplicate")
	}
	s, err := js.Stream(ctx, stream.TouchpointStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Fatalf("want 2 stored, got %d", info.State.Msgs)
	}
	// Past the window the same id is stored again: the window is the
	// guarantee, and it is configurable.
	deadline := time.Now().Add(10 * time.Second)
	for {
		time.Sleep(500 * time.Millisecond)
		ack := publish(t, js, e)
		if !ack.Duplicate {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("still a duplicate long after the 1s window")
		}
	}
}

func TestMsgIDIsPerSourceAndID(t *testing.T) {
	if stream.MsgID("a", "b") == stream.MsgID("a", "b2") || stream.MsgID("ab", "c") == stream.MsgID("a", "bc") {
		t.Fatal("message ids collide")
	}
	if stream.MsgID("s", "1") != stream.MsgID("s", "1") {
		t.Fatal("message id not deterministic")
	}
	e := visit(t, "s", "1", "c")
	m, err := stream.NewFactMsg(&e)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(jetstream.MsgIDHeader) != stream.MsgID("s", "1") || m.Subject != stream.PublishSubject(touchpoint.KindVisit, "c") {
		t.Fatalf("msg %s %v", m.Subject, m.Header)
	}
	// A correction has an id of its own, or the duplicate window would
	// drop a correction sent right after the original.
	e.Extensions = map[string]string{touchpoint.ExtRevision: "2"}
	if m, _ := stream.NewFactMsg(&e); m.Header.Get(jetstream.MsgIDHeader) != stream.MsgID("s", "1")+"-r2" {
		t.Fatalf("correction msg id %s", m.Header.Get(jetstream.MsgIDHeader))
	}
	d := event(t, "s", "2", "c", touchpoint.Visit{})
	d.Type = touchpoint.TypeStageChanged
	if _, err := stream.NewFactMsg(&d); err == nil {
		t.Fatal("a derived event got a fact subject")
	}
}

var awkwardCustomers = []string{
	"c-1", "c", "c-10", "acme.nl/42", "acme.nl", "acme_nl", "a b", "a  b", "ünïcødé ✓", "客户-7",
	"x*y", "x>y", "tab\there", "_5F", "dot.", ".dot", "a/b/c", "percent%41", "UPPER", "upper",
}

func TestCustomerFilter(t *testing.T) {
	js := ensure(t, stream.DefaultTopology())
	want := map[string][]string{}
	kinds := []touchpoint.Typed{
		touchpoint.Visit{Common: touchpoint.Common{Channel: "web"}},
		touchpoint.Survey{SurveyID: "s", Score: 8},
		touchpoint.Order{OrderID: "o", Status: "placed", Amount: touchpoint.Amount{Cents: 100}, Currency: "EUR"},
	}
	for i, c := range awkwardCustomers {
		for j := 0; j <= i%3; j++ {
			id := fmt.Sprintf("e-%d-%d", i, j)
			publish(t, js, event(t, "shop", id, c, kinds[j]))
			want[c] = append(want[c], id)
		}
	}
	for _, c := range awkwardCustomers {
		msgs := fetchAll(t, js, stream.TouchpointStream, stream.CustomerFilter(c))
		got := decodeIDs(t, msgs)
		if fmt.Sprint(got) != fmt.Sprint(want[c]) {
			t.Errorf("customer %q: got %v, want %v", c, got, want[c])
		}
		for _, m := range msgs {
			_, _, key, ok := stream.ParseStoredSubject(m.Subject())
			if id, idOK := stream.CustomerID(key); !ok || !idOK || id != c {
				t.Errorf("customer %q: subject %q gives %q", c, m.Subject(), id)
			}
		}
	}
}

func TestKindFilter(t *testing.T) {
	js := ensure(t, stream.DefaultTopology())
	payloads := map[touchpoint.Kind]touchpoint.Typed{
		touchpoint.KindVisit:      touchpoint.Visit{Common: touchpoint.Common{Channel: "store"}},
		touchpoint.KindQuote:      touchpoint.Quote{QuoteID: "q", Status: "sent", Amount: touchpoint.Amount{Cents: 5}, Currency: "EUR"},
		touchpoint.KindOrder:      touchpoint.Order{OrderID: "o", Status: "placed", Amount: touchpoint.Amount{Cents: 5}, Currency: "EUR"},
		touchpoint.KindComplaint:  touchpoint.Complaint{ComplaintID: "k", Status: "opened", Category: "x"},
		touchpoint.KindSurvey:     touchpoint.Survey{SurveyID: "s", Score: 3},
		touchpoint.KindOffboarded: touchpoint.Offboarded{Reason: "moved"},
	}
	count := map[touchpoint.Kind]int{}
	n := 0
	for i := 0; i < 3; i++ {
		for _, k := range touchpoint.FactKinds() {
			if int(k[0])%3 < i { // uneven counts per kind
				continue
			}
			publish(t, js, event(t, "shop", fmt.Sprint("e", n), fmt.Sprint("cust.", n%5), payloads[k]))
			count[k]++
			n++
		}
	}
	total := 0
	for _, k := range touchpoint.FactKinds() {
		msgs := fetchAll(t, js, stream.TouchpointStream, stream.KindFilter(k))
		if len(msgs) != count[k] {
			t.Errorf("%s: got %d, want %d", k, len(msgs), count[k])
		}
		for _, m := range msgs {
			e, err := stream.DecodeMsg(m.Headers(), m.Data())
			if err != nil || e.Kind() != k {
				t.Errorf("%s filter delivered %s (%v)", k, e.Type, err)
			}
		}
		total += len(msgs)
	}
	if all := fetchAll(t, js, stream.TouchpointStream, stream.AllFactsFilter); len(all) != n || total != n {
		t.Fatalf("all facts %d, per kind %d, published %d", len(all), total, n)
	}
}

// TestPartitionedConsumers: N durable pull consumers, one per partition
// filter, together see every event exactly once, each customer in one
// partition, in publish order.
func TestPartitionedConsumers(t *testing.T) {
	const partitions, customers, perCustomer = 4, 40, 12
	topo := stream.DefaultTopology()
	topo.Partitions = partitions
	js := ensure(t, topo)
	ctx := context.Background()

	// Publish asynchronously, interleaving customers.
	for j := 0; j < perCustomer; j++ {
		for c := 0; c < customers; c++ {
			e := visit(t, "shop", fmt.Sprintf("%d/%d", c, j), fmt.Sprintf("customer.%d", c))
			m, err := stream.NewFactMsg(&e)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := js.PublishMsgAsync(m); err != nil {
				t.Fatal(err)
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(10 * time.Second):
		t.Fatal("acks did not arrive")
	}

	type seen struct {
		partition int
		seq       int
	}
	results := make(chan map[string][]seen, partitions)
	errs := make(chan error, partitions)
	for p := 0; p < partitions; p++ {
		cons, err := js.CreateOrUpdateConsumer(ctx, stream.TouchpointStream, jetstream.ConsumerConfig{
			Durable:       fmt.Sprint("part-", p),
			FilterSubject: stream.PartitionFilter(p),
			AckPolicy:     jetstream.AckExplicitPolicy,
			MaxAckPending: 64, // bounded, so order must hold across fetches
		})
		if err != nil {
			t.Fatal(err)
		}
		go func(p int, cons jetstream.Consumer) {
			got := map[string][]seen{}
			for {
				batch, err := cons.Fetch(50, jetstream.FetchMaxWait(500*time.Millisecond))
				if err != nil {
					errs <- err
					return
				}
				n := 0
				for m := range batch.Messages() {
					n++
					part, _, key, ok := stream.ParseStoredSubject(m.Subject())
					e, err := stream.DecodeMsg(m.Headers(), m.Data())
					if err != nil || !ok || part != p {
						errs <- fmt.Errorf("partition %d got %q: %v", p, m.Subject(), err)
						return
					}
					if id, _ := stream.CustomerID(key); id != e.Subject {
						errs <- fmt.Errorf("subject key %q for customer %q", key, e.Subject)
						return
					}
					var c, j int
					fmt.Sscanf(e.ID, "%d/%d", &c, &j)
					got[e.Subject] = append(got[e.Subject], seen{p, j})
					if err := m.Ack(); err != nil {
						errs <- err
						return
					}
				}
				if n == 0 {
					results <- got
					return
				}
			}
		}(p, cons)
	}
	all := map[string][]seen{}
	used := map[int]bool{}
	for p := 0; p < partitions; p++ {
		select {
		case err := <-errs:
			t.Fatal(err)
		case got := <-results:
			for c, s := range got {
				if _, dup := all[c]; dup {
					t.Fatalf("customer %s in two partitions", c)
				}
				all[c] = s
				used[s[0].partition] = true
			}
		}
	}
	if len(all) != customers {
		t.Fatalf("saw %d customers, want %d", len(all), customers)
	}
	for c, s := range all {
		if len(s) != perCustomer {
			t.Fatalf("%s: %d events, want %d exactly once", c, len(s), perCustomer)
		}
		for j, x := range s {
			if x.seq != j || x.partition != s[0].partition {
				t.Fatalf("%s: order or partition broken: %v", c, s)
			}
		}
	}
	if len(used) < 2 {
		t.Fatalf("40 customers all hashed into partitions %v", used)
	}
}

func TestDecodeMsg(t *testing.T) {
	e := event(t, "shop", "e-1", "acme.nl/42", touchpoint.Survey{SurveyID: "s", Score: 9, Comment: "ok"})
	e.Extensions = map[string]string{"traceparent": "00-abc-01"}
	m := stream.NewMsg("x", &e)
	if m.Header.Get("ce-type") != touchpoint.TypeSurvey || string(m.Data) != string(e.Data) {
		t.Fatalf("binary message %v %s", m.Header, m.Data)
	}
	check := func(name string, got touchpoint.Event, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.ID != e.ID || got.Source != e.Source || got.Type != e.Type || got.Subject != e.Subject ||
			!got.Time.Equal(e.Time) || got.Extensions["traceparent"] != "00-abc-01" {
			t.Fatalf("%s: %+v", name, got)
		}
		if _, err := touchpoint.Validate(&got, time.Now()); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	got, err := stream.DecodeMsg(m.Header, m.Data)
	check("binary", got, err)
	got, err = stream.DecodeMsg(nil, e.MarshalStructured())
	check("structured without headers", got, err)
	got, err = stream.DecodeMsg(nats.Header{"Content-Type": {"application/cloudevents+json"}}, e.MarshalStructured())
	check("structured with content type", got, err)

	if _, err := stream.DecodeMsg(nil, []byte("not json")); !errors.Is(err, touchpoint.ErrMalformed) {
		t.Fatalf("garbage: %v", err)
	}
	// Binary mode with only a specversion decodes; Validate names what is missing.
	sparse, err := stream.DecodeMsg(nats.Header{"Ce-Specversion": {"1.0"}}, e.Data)
	if err != nil {
		t.Fatalf("sparse binary: %v", err)
	}
	if _, err := touchpoint.Validate(&sparse, time.Now()); !errors.Is(err, touchpoint.ErrInvalid) {
		t.Fatalf("sparse binary validates: %v", err)
	}
}

// TestDecodeMsgOverTheWire: a structured event published with no headers
// at all (as sdk-go's JetStream sender does) is read back from the stream.
func TestDecodeMsgOverTheWire(t *testing.T) {
	js := ensure(t, stream.DefaultTopology())
	e := visit(t, "sdk", "s-1", "c-9")
	if _, err := js.Publish(context.Background(), stream.PublishSubject(touchpoint.KindVisit, "c-9"), e.MarshalStructured()); err != nil {
		t.Fatal(err)
	}
	publish(t, js, visit(t, "go", "b-1", "c-9"))
	msgs := fetchAll(t, js, stream.TouchpointStream, stream.CustomerFilter("c-9"))
	if ids := decodeIDs(t, msgs); fmt.Sprint(ids) != "[s-1 b-1]" {
		t.Fatalf("got %v", ids)
	}
}

// nextOn fetches the next touchpoint for a durable consumer with explicit
// acks, created as a service creates its own.
func nextOn(t *testing.T, js jetstream.JetStream, durable string) jetstream.Msg {
	t.Helper()
	cons, err := js.CreateOrUpdateConsumer(context.Background(), stream.TouchpointStream, jetstream.ConsumerConfig{Durable: durable, AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPublishDeadLetter(t *testing.T) {
	ctx := context.Background()
	js := ensure(t, stream.DefaultTopology())
	e := visit(t, "shop", "bad-1", "c-1")
	publish(t, js, e)
	m := nextOn(t, js, "writer")
	cause := fmt.Errorf("wrapped: %w", touchpoint.ErrInvalid)
	d := stream.FromMsg("writer", m, "invalid", cause)
	if d.StreamSeq != 1 || d.Delivered != 1 {
		t.Fatalf("metadata %+v", d)
	}
	for i := 0; i < 2; i++ { // a retried dead-lettering stores once
		if err := stream.PublishDeadLetter(ctx, js, d); err != nil {
			t.Fatal(err)
		}
	}
	dead := fetchAll(t, js, stream.DeadLetterStream, stream.DeadLetterSubject("writer"))
	if len(dead) != 1 {
		t.Fatalf("got %d dead letters", len(dead))
	}
	h := dead[0].Headers()
	for k, want := range map[string]string{
		stream.HeaderDeadReason:    cause.Error(),
		stream.HeaderDeadClass:     "invalid",
		stream.HeaderDeadConsumer:  "writer",
		stream.HeaderDeadSubject:   m.Subject(),
		stream.HeaderDeadSeq:       "1",
		stream.HeaderDeadDelivered: "1",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	// The original event is intact in the dead letter.
	got, err := stream.DecodeMsg(h, dead[0].Data())
	if err != nil || got.ID != "bad-1" || got.Subject != "c-1" {
		t.Fatalf("dead letter event %+v %v", got, err)
	}
	// A long multi-line reason is cut on a rune boundary and kept on one
	// header line, not refused.
	d.StreamSeq = 99
	d.Err = errors.New("first line\nsecond line " + strings.Repeat("€", 3000))
	if err := stream.PublishDeadLetter(ctx, js, d); err != nil {
		t.Fatal(err)
	}
	dead = fetchAll(t, js, stream.DeadLetterStream, stream.DeadLetterSubject("writer"))
	if len(dead) != 2 {
		t.Fatalf("got %d dead letters", len(dead))
	}
	reason := dead[1].Headers().Get(stream.HeaderDeadReason)
	if !strings.HasPrefix(reason, "first line") || strings.ContainsAny(reason, "\r\n") || !utf8.ValidString(reason) || len(reason) > 4096 {
		t.Fatalf("reason %q...", reason[:40])
	}
}

// A message near the broker's limit no longer fits once the dead-letter
// headers are added: its body is cut and marked, not refused (which its
// consumer would retry forever).
func TestPublishDeadLetterOfLargeMessage(t *testing.T) {
	ctx := context.Background()
	js := ensure(t, stream.DefaultTopology())
	body := bytes.Repeat([]byte("x"), int(js.Conn().MaxPayload())-512)
	subject := stream.PublishSubject(touchpoint.KindVisit, "c-1")
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: body}); err != nil {
		t.Fatal(err)
	}
	m := nextOn(t, js, "big")
	d := stream.FromMsg("big", m, "undecodable", errors.New(strings.Repeat("why ", 1000)))
	if err := stream.PublishDeadLetter(ctx, js, d); err != nil {
		t.Fatalf("a large message's dead letter was refused: %v", err)
	}
	dead := fetchAll(t, js, stream.DeadLetterStream, stream.DeadLetterSubject("big"))
	if len(dead) != 1 {
		t.Fatalf("got %d dead letters", len(dead))
	}
	h := dead[0].Headers()
	if h.Get(stream.HeaderDeadTruncated) != strconv.Itoa(len(body)) || len(dead[0].Data()) >= len(body) ||
		!bytes.HasPrefix(body, dead[0].Data()) || h.Get(stream.HeaderDeadSeq) != "1" {
		t.Fatalf("truncated %q, %d of %d bytes kept, seq %q", h.Get(stream.HeaderDeadTruncated), len(dead[0].Data()), len(body), h.Get(stream.HeaderDeadSeq))
	}
}
