package projector

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/klantreis/journey/pkg/ops"
	"github.com/klantreis/journey/pkg/stream"
)

// An elastic projector group (JOURNEY_PROJECTOR_PARTITIONS=group): the
// instances of one Durable share the stream's partitions with no static
// list. Ownership is a lease per partition in the key-value bucket
// "<Durable>-leases", whose MaxAge is LeaseTTL:
//
//   - "m.<member>" is a member's heartbeat, put every LeaseTTL/6; a member
//     counts while its heartbeat is younger than LeaseTTL.
//   - "p<k>" holds partition k's owner. It is taken with Create (only if
//     absent), renewed with Update on its revision every LeaseTTL/6 and
//     deleted on its revision when handed over. A dead member's lease
//     expires LeaseTTL after its last renewal.
//   - Every member computes the same share from the sorted live members
//     (share): a member over its share drains partitions and hands them
//     back, one under it takes free ones. A join or a death rebalances.
//
// Two members never write one partition's state at once: a member stops
// writing a partition (the worker's lost context) once its lease has not
// been confirmed for LeaseTTL/2, half a TTL before the server can expire
// it, and its successor can only take the key after it expired or was
// handed back. The customer states are compare-and-set besides, so even a
// stale writer could not overwrite a successor's state.
//
// Why not github.com/synadia-io/orbit.go/pcgroups: see docs/scaling.md.

// groupBucket names the lease bucket of a durable.
func groupBucket(durable string) string { return durable + "-leases" }

func partitionKey(p int) string { return "p" + strconv.Itoa(p) }

const memberPrefix = "m."

// share is how many partitions member me should own: total split over the
// sorted members, the first total%n taking one more. 0 if me is not in
// members.
func share(total int, members []string, me string) int {
	i := slices.Index(members, me)
	if i < 0 || len(members) == 0 {
		return 0
	}
	n := len(members)
	s := total / n
	if i < total%n {
		s++
	}
	return s
}

// preference is the order in which member i of n tries free partitions:
// those congruent to i first, so that members joining together rarely
// race for the same key.
func preference(total, i, n int) []int {
	out := make([]int, 0, total)
	for p := 0; p < total; p++ {
		if n > 0 && p%n == i {
			out = append(out, p)
		}
	}
	for p := 0; p < total; p++ {
		if n == 0 || p%n != i {
			out = append(out, p)
		}
	}
	return out
}

// group is one member's view. Only its run goroutine touches owned.
type group struct {
	kv    jetstream.KeyValue
	id    string
	total int
	ttl   time.Duration
	start func(p, owned int) (*worker, error)
	log   *slog.Logger
	owned map[int]*held
	gauge prometheus.Gauge
	// seen is set after the first heartbeat: a member takes partitions
	// from its second tick on, once the members starting with it had a
	// chance to be seen, instead of taking all and handing most back.
	seen bool
}

// held is one owned partition: its worker and the goroutine that renews
// its lease.
type held struct {
	release chan struct{} // closed: drain the worker and hand the partition back
	done    chan struct{} // closed: worker stopped, lease released or lost
}

func runGroup(ctx context.Context, js jetstream.JetStream, cfg Config, start func(p, owned int) (*worker, error),
	reg prometheus.Registerer, log *slog.Logger) {
	// A member is "<pid>-<random>": unique, and an operator (or a test)
	// can tell which process owns a lease.
	var b [4]byte
	_, _ = crand.Read(b[:])
	id := strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:])
	g := &group{id: id, total: cfg.Stream.Partitions, ttl: cfg.Projector.LeaseTTL, start: start,
		owned: map[int]*held{}, log: log.With("member", id)}
	g.gauge = prometheus.NewGauge(prometheus.GaugeOpts{Name: "journey_projector_group_partitions",
		Help: "Partitions this member of the elastic projector group owns."})
	// runGroup runs again for each rules version the projector follows:
	// the second time the gauge is registered already, and is reused.
	if err := reg.Register(g.gauge); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(prometheus.Gauge); ok {
				g.gauge = existing
			}
		}
	}
	if err := keepTrying(ctx, log, "open the group's lease bucket", cfg.Projector.MaxBackoff, func(ctx context.Context) error {
		kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      groupBucket(cfg.Projector.Durable),
			Description: "journey projector group: member heartbeats and partition leases",
			History:     1,
			TTL:         g.ttl,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Stream.Replicas,
		})
		g.kv = kv
		return err
	}); err != nil {
		return
	}
	g.log.Info("joined the projector group", "partitions", g.total, "lease_ttl", g.ttl)
	g.run(ctx)
}

func (g *group) run(ctx context.Context) {
	ops.EveryFromNow(ctx, g.ttl/6, g.tick)
	g.leave()
}

// tick renews the heartbeat, forgets finished partitions and moves the
// member towards its share.
func (g *group) tick(ctx context.Context) {
	for p, h := range g.owned {
		select {
		case <-h.done:
			delete(g.owned, p)
		default:
		}
	}
	g.gauge.Set(float64(len(g.owned)))
	tctx, cancel := context.WithTimeout(ctx, g.ttl/4)
	defer cancel()
	if _, err := g.kv.Put(tctx, memberPrefix+g.id, []byte(strconv.Itoa(len(g.owned)))); err != nil {
		g.log.Warn("group heartbeat failed", "err", err)
		return
	}
	members, err := g.members(tctx)
	if err != nil {
		g.log.Warn("group members not read", "err", err)
		return
	}
	if !g.seen {
		g.seen = true
		return
	}
	want := share(g.total, members, g.id)
	var active []int
	for p, h := range g.owned {
		if !closed(h.release) {
			active = append(active, p)
		}
	}
	slices.Sort(active)
	for len(active) > want { // hand back the highest first
		p := active[len(active)-1]
		active = active[:len(active)-1]
		g.log.Info("handing partition back", "partition", p, "members", len(members), "share", want)
		close(g.owned[p].release)
	}
	if len(active) >= want {
		return
	}
	for _, p := range preference(g.total, slices.Index(members, g.id), len(members)) {
		if len(active) >= want {
			break
		}
		if _, mine := g.owned[p]; mine {
			continue // being handed back: taken again once released
		}
		at := time.Now()
		rev, err := g.kv.Create(tctx, partitionKey(p), []byte(g.id))
		if err != nil {
			if !errors.Is(err, jetstream.ErrKeyExists) {
				g.log.Warn("partition lease not taken", "partition", p, "err", err)
			}
			continue
		}
		h, err := g.hold(ctx, p, rev, at, want)
		if err != nil {
			g.log.Error("partition not started", "partition", p, "err", err)
			continue
		}
		g.owned[p] = h
		active = append(active, p)
		g.log.Info("took partition", "partition", p, "members", len(members), "share", want)
	}
	g.gauge.Set(float64(len(g.owned)))
}

func closed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// members returns the sorted ids of the members whose heartbeat is younger
// than the TTL (this one included).
func (g *group) members(ctx context.Context) ([]string, error) {
	w, err := g.kv.Watch(ctx, memberPrefix+"*", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer func() { _ = w.Stop() }()
	out := []string{g.id}
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("projector: group members watch closed")
			}
			if e == nil {
				slices.Sort(out)
				return slices.Compact(out), nil
			}
			if time.Since(e.Created()) < g.ttl {
				out = append(out, strings.TrimPrefix(e.Key(), memberPrefix))
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// hold starts partition p's worker under the lease taken at 'at' and keeps
// the lease until the worker stops.
func (g *group) hold(ctx context.Context, p int, rev uint64, at time.Time, owned int) (*held, error) {
	w, err := g.start(p, owned)
	if err != nil {
		g.deleteLease(p, rev)
		return nil, err
	}
	wctx, drain := context.WithCancel(ctx)
	lost, abort := context.WithCancel(context.Background())
	w.lost = lost
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		w.run(wctx)
	}()
	h := &held{release: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		defer abort()
		defer drain()
		if g.keep(p, rev, at, h.release, drain, stopped) {
			return
		}
		// Lost: stop every write at once, then wait for the worker.
		abort()
		drain()
		<-stopped
	}()
	return h, nil
}

// keep renews p's lease until the worker stopped (then hands it back and
// returns true) or the lease is lost or unconfirmed for ttl/2 (returns
// false). A release drains the worker first.
func (g *group) keep(p int, rev uint64, confirmed time.Time, release chan struct{}, drain func(), stopped chan struct{}) bool {
	t := time.NewTicker(g.ttl / 6)
	defer t.Stop()
	limit := g.ttl / 2
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		select {
		case <-release:
			drain()
			release = nil
		case <-stopped:
			g.deleteLease(p, rev)
			return true
		case <-deadline.C:
			g.log.Error("partition lease not confirmed; stopping its writes", "partition", p, "for", time.Since(confirmed))
			return false
		case <-t.C:
			at := time.Now()
			rctx, cancel := context.WithTimeout(context.Background(), min(g.ttl/6, time.Until(confirmed.Add(limit))))
			nrev, err := g.kv.Update(rctx, partitionKey(p), []byte(g.id), rev)
			cancel()
			if err == nil {
				rev, confirmed = nrev, at
				deadline.Reset(time.Until(confirmed.Add(limit)))
				continue
			}
			if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || stream.IsWrongLastSeq(err) {
				g.log.Error("partition lease lost; stopping its writes", "partition", p, "err", err)
				return false
			}
			g.log.Warn("partition lease not renewed", "partition", p, "err", err)
		}
	}
}

// deleteLease hands p back; if it fails the lease expires after the TTL.
func (g *group) deleteLease(p int, rev uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), g.ttl/4)
	defer cancel()
	if err := g.kv.Delete(ctx, partitionKey(p), jetstream.LastRevision(rev)); err != nil {
		g.log.Warn("partition lease not handed back; it expires by itself", "partition", p, "err", err)
	}
}

// leave waits for the partitions to drain and be handed back (their
// workers saw ctx end), then removes the heartbeat so that the others
// rebalance at once.
func (g *group) leave() {
	for _, h := range g.owned {
		<-h.done
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.ttl/4)
	defer cancel()
	if err := g.kv.Delete(ctx, memberPrefix+g.id); err != nil {
		g.log.Warn("group heartbeat not removed", "err", err)
	}
	g.gauge.Set(0)
	g.log.Info(fmt.Sprintf("left the projector group (%d partitions handed back)", len(g.owned)))
}
