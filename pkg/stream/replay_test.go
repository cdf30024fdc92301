package stream_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/stream"
)

// A replayed copy's subject maps back to the stored touchpoint subject,
// and its sequence to the original's; anything else is left alone.
func TestReplaySubjectsAndSequences(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"replay.warehouse.3.order.acme_2Enl_2F1", "touchpoint.3.order.acme_2Enl_2F1"},
		{"replay.projector.0.visit.b-2", "touchpoint.0.visit.b-2"},
		{"touchpoint.3.order.x", "touchpoint.3.order.x"},
		{"replay", "replay"},
		{"other.3.order.x", "other.3.order.x"},
	} {
		if got := stream.StoredSubject(tc.in); got != tc.want {
			t.Errorf("StoredSubject(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if tail, ok := stream.StoredTail("touchpoint.5.survey.k"); !ok || tail != "5.survey.k" {
		t.Errorf("StoredTail = %q, %v", tail, ok)
	}
	if _, ok := stream.StoredTail("touchpoint.survey.k"); ok {
		t.Error("a publish subject has no stored tail")
	}
	h := nats.Header{}
	h.Set(stream.HeaderReplaySeq, "42")
	for _, tc := range []struct {
		subject string
		h       nats.Header
		want    uint64
	}{
		{"replay.warehouse.1.order.k", h, 42},
		{"replay.warehouse.1.order.k", nats.Header{}, 7}, // no header: its own
		{"touchpoint.1.order.k", h, 7},                   // a touchpoint's header is not trusted
	} {
		if got := stream.OriginalSeq(tc.subject, tc.h, 7); got != tc.want {
			t.Errorf("OriginalSeq(%s) = %d, want %d", tc.subject, got, tc.want)
		}
	}
	if f := stream.ReplayPartitionFilter(stream.ReplayProjector, 3); f != "replay.projector.3.*.*" {
		t.Errorf("partition filter %q", f)
	}
	if f := stream.ReplayFilter(stream.ReplayWarehouse); f != "replay.warehouse.*.*.*" {
		t.Errorf("filter %q", f)
	}
}

// The replay readers run under the services' restricted users: the
// writer's and the projector's users consume their -replay durables on
// REPLAY (created by the admin's Ensure, as in deploy/nats/streams), and
// neither may publish copies there (journeyctl, as admin, does).
func TestReplayReadersUnderRestrictedUsers(t *testing.T) {
	ctx := context.Background()
	s, admin := secureWithStreams(t)
	ev := visit(t, "shop", "r-1", "c-1")
	for _, target := range []string{stream.ReplayWarehouse, stream.ReplayProjector} {
		m := stream.NewMsg(stream.ReplayPrefix(target)+".0.visit.c-1", &ev)
		m.Header.Set(jetstream.MsgIDHeader, target+"-r-1") // one copy per target, as journeyctl's per-replay ids make them
		if _, err := admin.js.PublishMsg(ctx, m); err != nil {
			t.Fatalf("admin publishes a copy: %v", err)
		}
	}
	for _, tc := range []struct {
		user, durable, filter string
	}{
		{stream.UserWriter, "writer-replay", stream.ReplayFilter(stream.ReplayWarehouse)},
		{stream.UserProjector, "journey-projector-replay-p0", stream.ReplayPartitionFilter(stream.ReplayProjector, 0)},
	} {
		u := connectAs(t, s, tc.user)
		if err := stream.DefaultTopology().Ensure(ctx, u.js); err != nil {
			t.Fatalf("%s: Ensure of existing streams: %v", tc.user, err)
		}
		cons, err := u.js.CreateOrUpdateConsumer(ctx, stream.ReplayStream, jetstream.ConsumerConfig{
			Durable: tc.durable, FilterSubject: tc.filter, AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			t.Fatalf("%s creates %s on REPLAY: %v", tc.user, tc.durable, err)
		}
		got, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("%s fetches: %v", tc.user, err)
		}
		if err := got.DoubleAck(ctx); err != nil {
			t.Fatalf("%s acks: %v", tc.user, err)
		}
		forged := stream.NewMsg(stream.ReplayPrefix(stream.ReplayWarehouse)+".0.visit.c-1", &ev)
		if _, err := u.js.PublishMsg(ctx, forged); err == nil {
			t.Fatalf("%s published a replay copy", tc.user)
		}
		u.violated(t, "Publish", forged.Subject)
	}
}
