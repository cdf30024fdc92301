package projector_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/internal/natsserver/natscluster"
	"github.com/klantreis/journey/internal/warehousetest"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/services/projector"
)

// publishRetrying publishes events, re-sending (same Nats-Msg-Id, so the
// stream keeps one) whatever was not acknowledged, until all are. Each
// round waits at most 5 s for all its acks together (one wait per event
// made a round whose acks were lost on a killed node last an hour), and
// the test fails when the cluster takes none of them for 2 minutes.
func publishRetrying(t *testing.T, js jetstream.JetStream, events []touchpoint.Event) (retried int) {
	t.Helper()
	todo := events
	deadline := time.Now().Add(2 * time.Minute)
	for len(todo) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events still not acknowledged after 2 minutes of retries", len(todo), len(events))
		}
		var again []touchpoint.Event
		futures := make([]jetstream.PubAckFuture, len(todo))
		for i := range todo {
			m, err := stream.NewFactMsg(&todo[i])
			if err != nil {
				t.Error(err)
				return retried
			}
			if futures[i], err = js.PublishMsgAsync(m); err != nil {
				futures[i] = nil
			}
		}
		round, expired := time.After(5*time.Second), false
		for i, f := range futures {
			if f == nil {
				again = append(again, todo[i])
				continue
			}
			if !expired {
				select {
				case <-f.Ok():
					continue
				case <-f.Err():
					again = append(again, todo[i])
					continue
				case <-round:
					expired = true
				}
			}
			// The round's time is up: what is not acknowledged by now is
			// sent again.
			select {
			case <-f.Ok():
			default:
				again = append(again, todo[i])
			}
		}
		retried += len(again)
		if len(again) > 0 {
			time.Sleep(200 * time.Millisecond)
		}
		todo = again
	}
	return retried
}

// A group of three projector processes on a 3-node NATS cluster (R3
// streams and buckets, every node in JOURNEY_NATS_URL). Under load the
// leader of the group's lease bucket is SIGKILLed and restarted, then the
// leader of the customer state bucket, then the leader of TOUCHPOINTS. The
// partitions stay owned by the three members, and the final states equal
// the rules applied to every event.
func TestProjectorGroupOnANATSClusterSurvivesLeadersKilled(t *testing.T) {
	ch := warehousetest.Config(t)
	cl, js := startR3Cluster(t)
	durable, bucket := randName("proj"), randName("st_")
	env := append(childEnvOn(cl.URLs(), ch.Addr, ch.Database, durable, bucket, randName("ix_"), randName("OUTBOX_")),
		"JOURNEY_STREAM_REPLICAS=3", "JOURNEY_PROJECTOR_PARTITIONS=group", "JOURNEY_PROJECTOR_BATCH_SIZE=500",
		"JOURNEY_PROJECTOR_LEASE_TTL="+groupLeaseTTL.String(), "JOURNEY_PROJECTOR_ACK_WAIT="+groupAckWait.String())
	ms := []*member{startMember(t, env, "c0"), startMember(t, env, "c1"), startMember(t, env, "c2")}
	all := func(own map[int]int) bool { return balanced(own, ms[0].pid(), ms[1].pid(), ms[2].pid()) }
	formed := waitOwners(t, js, durable, 60*time.Second, "three members share the partitions on the cluster", all)
	t.Logf("group of 3 formed on the cluster %.1fs after start", formed.Seconds())

	now := time.Now().UTC()
	events := journeys(37, 3000, now)
	targets := []string{"KV_" + durable + "-leases", "KV_" + bucket, stream.TouchpointStream}
	per := len(events) / (len(targets) + 2)
	retried := publishRetrying(t, js, events[:per])
	for i, target := range targets {
		leader, leaderName := cl.Leader(t, js, target)
		leader.Kill()
		killed := time.Now()
		retried += publishRetrying(t, js, events[(i+1)*per:(i+2)*per])
		time.Sleep(time.Until(killed.Add(3 * time.Second)))
		leader.Restart()
		restarted := time.Since(killed)
		waitOwners(t, js, durable, time.Minute, "the partitions owned by the three members again", all)
		t.Logf("SIGKILLed %s, leader of %s, restarted it after %.1fs; every partition owned by the three members (leases readable) %.1fs after the kill",
			leaderName, target, restarted.Seconds(), time.Since(killed).Seconds())
	}
	retried += publishRetrying(t, js, events[(len(targets)+1)*per:])
	waitDrained(t, js, durable, 2*time.Minute)
	again := waitOwners(t, js, durable, 30*time.Second, "the three members still share the partitions", all)
	var stopped, took, repulled int
	for _, m := range ms {
		raw, _ := os.ReadFile(m.log)
		stopped += strings.Count(string(raw), "stopping its writes")
		took += strings.Count(string(raw), "took partition")
		repulled += strings.Count(string(raw), "though the stream holds more")
	}
	t.Logf("the members' logs: %d partitions taken in all (%d at the start), %d leases given up as unconfirmed or lost, %d lost pulls issued again",
		took, testPartitions, stopped, repulled)
	states := clusterStates(t, js, bucket)
	t.Logf("%d events of 3000 customers, %d publishes re-sent; all applied; partitions shared by the 3 members (%.1fs to confirm); %d customer states",
		len(events), retried, again.Seconds(), len(states))
	if got, want := recordStates(states), reference(t, events, now); stateHash(got) != stateHash(want) {
		t.Fatalf("after the leaders were killed the states differ from the rules applied to the events: %s", stateDiff(got, want, 5))
	}
}

// startR3Cluster starts a 3-node cluster with the R3 streams of
// testPartitions partitions, and a JetStream client on every node that
// reconnects for ever.
func startR3Cluster(t *testing.T) (*natscluster.Cluster, jetstream.JetStream) {
	t.Helper()
	cl := natscluster.Start(t, 3)
	nc, err := nats.Connect(cl.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	topo := stream.DefaultTopology()
	topo.Partitions, topo.Replicas = testPartitions, 3
	waitUntil(t, 30*time.Second, "the cluster to create the R3 streams", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return topo.Ensure(ctx, js) == nil
	})
	return cl, js
}

// childEnvOn is the environment of a projector process on the given
// servers and names.
func childEnvOn(natsURL, chAddr, chDB, durable, bucket, index, outbox string) []string {
	return append(os.Environ(),
		"JOURNEY_NATS_URL="+natsURL,
		"JOURNEY_STREAM_PARTITIONS="+strconv.Itoa(testPartitions),
		"JOURNEY_CLICKHOUSE_ADDR="+chAddr,
		"JOURNEY_CLICKHOUSE_DATABASE="+chDB,
		"JOURNEY_PROJECTOR_ADDR=127.0.0.1:0",
		"JOURNEY_PROJECTOR_DURABLE="+durable,
		"JOURNEY_PROJECTOR_BUCKET="+bucket,
		"JOURNEY_PROJECTOR_INDEX_BUCKET="+index,
		"JOURNEY_PROJECTOR_OUTBOX_STREAM="+outbox,
	)
}

// A projector on a 3-node cluster, its partition consumers idle with
// their pulls waiting. Every node is SIGKILLed; one restarts, and the
// projector reconnects to it while no consumer has a quorum; the others
// restart 4 s later. Events published then are all applied, and their
// rows reach the warehouse. (A pull lost without a status is covered
// deterministically by stream's TestWatchedReportsALostPull; here the
// projector must come back from losing every node.)
func TestProjectorResumesAfterEveryNodeWasKilled(t *testing.T) {
	ch := warehousetest.Config(t)
	cl, js := startR3Cluster(t)
	durable, bucket, outbox := randName("proj"), randName("st_"), randName("OUTBOX_")
	env := append(childEnvOn(cl.URLs(), ch.Addr, ch.Database, durable, bucket, randName("ix_"), outbox),
		"JOURNEY_STREAM_REPLICAS=3")
	startMember(t, env, "p")
	waitUntil(t, time.Minute, "every partition consumer pulling", func() bool {
		return waitingPulls(js, durable) == testPartitions
	})

	for _, n := range cl.Nodes {
		n.Kill()
	}
	killed := time.Now()
	time.Sleep(time.Second)
	cl.Nodes[0].Restart() // the projector reconnects to it and pulls, but no consumer has a quorum
	time.Sleep(4 * time.Second)
	cl.Nodes[1].Restart()
	cl.Nodes[2].Restart()
	t.Logf("SIGKILLed the three nodes; restarted %s after %.1fs, the others 4s later", cl.Names[0], time.Since(killed).Seconds()-4)

	now := time.Now().UTC()
	events := journeys(41, 300, now)
	retried := publishRetrying(t, js, events)
	published := time.Now()
	waitDrained(t, js, durable, 90*time.Second)
	t.Logf("%d events (%d publishes re-sent) applied %.1fs after the last was published, %.1fs after the kill",
		len(events), retried, time.Since(published).Seconds(), time.Since(killed).Seconds())
	if got, want := recordStates(clusterStates(t, js, bucket)), reference(t, events, now); stateHash(got) != stateHash(want) {
		t.Fatalf("after every node was killed the states differ from the rules applied to the events: %s", stateDiff(got, want, 5))
	}
	var cfg projector.Config
	cfg.Projector.OutboxStream = outbox
	waitWarehouse(t, js, cfg, time.Minute)
}

// waitingPulls counts the partition consumers of durable with a pull
// request waiting at their leader.
func waitingPulls(js jetstream.JetStream, durable string) int {
	n := 0
	for p := 0; p < testPartitions; p++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := js.Consumer(ctx, stream.TouchpointStream, durable+"-p"+strconv.Itoa(p))
		var info *jetstream.ConsumerInfo
		if err == nil {
			info, err = c.Info(ctx)
		}
		cancel()
		if err == nil && info.NumWaiting > 0 {
			n++
		}
	}
	return n
}
