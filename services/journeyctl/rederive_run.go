package journeyctl

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/journey"
	"github.com/klantreis/journey/pkg/projection"
	"github.com/klantreis/journey/pkg/retry"
	"github.com/klantreis/journey/pkg/ruleset"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
	"github.com/klantreis/journey/services/projector"
)

// CatchUp is what one shadow projection run did.
type CatchUp struct {
	// Events applied (decoded and processed), Skipped those the projector
	// dead-letters (invalid), Rejected customers whose state grew too large.
	Events   int `json:"events"`
	Skipped  int `json:"skipped"`
	Rejected int `json:"rejected"`
	// Customers is how many customer records were written.
	Customers int `json:"customers"`
	// Withheld counts the derived events the run made and did not publish:
	// a shadow projection emits nothing on DERIVED.
	Withheld int `json:"derived_withheld"`
	// Positions is the stream sequence reached per partition.
	Positions map[int]uint64 `json:"positions"`
}

func (c CatchUp) counts() map[string]int {
	return map[string]int{"events": c.Events, "skipped": c.Skipped, "rejected": c.Rejected, "customers": c.Customers, "derived_withheld": c.Withheld}
}

// fetchBatch bounds the events one fetch and one apply take.
const fetchBatch = 1000

// catchUp projects TOUCHPOINTS into version v's state bucket, index and
// tables, silently, from where v's consumers stand to the stream's end.
// It runs the projector's own code (pkg/projection with the service's
// store, index, decoding and rows) through v's durable consumers, which
// the projector takes over when v goes live: a run killed at any point
// resumes where it stopped, and the projector continues from where it
// ended. Nothing is published on DERIVED: the shadow's transitions are
// the diff, not news. v must not be the version the projector runs.
func (e *Env) catchUp(ctx context.Context, v ruleset.Version, desc string) (CatchUp, error) {
	cu := CatchUp{Positions: map[int]uint64{}}
	rb, err := journey.NewRulebook(v.Rules)
	if err != nil {
		return cu, usagef("%s: %v", v.Name, err)
	}
	js, err := e.JS(ctx)
	if err != nil {
		return cu, err
	}
	db, err := e.DB(ctx)
	if err != nil {
		return cu, err
	}
	variant, err := db.Variant(v.TableSuffix())
	if err != nil {
		return cu, err
	}
	if err := variant.Create(ctx); err != nil {
		return cu, err
	}
	set, timeout, replicas := e.Config.ProjectorSettings, e.Config.NATS.RequestTimeout, e.Config.Stream.Replicas
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	store, err := projector.OpenStateStore(ctx, js, v.Bucket(set.Bucket), replicas, timeout)
	if err != nil {
		return cu, err
	}
	index, err := projector.OpenIndex(ctx, js, v.Bucket(set.IndexBucket), replicas, timeout)
	if err != nil {
		return cu, err
	}
	parts := e.Config.Stream.Partitions
	cons := make([]jetstream.Consumer, parts)
	var total int64
	for p := range parts {
		durable := stream.ProjectorPartitionDurable(v.Durable(set.Durable), p)
		c, err := js.CreateOrUpdateConsumer(ctx, stream.TouchpointStream, projector.ConsumerConfig(set, p, v.Durable(set.Durable)))
		if err != nil {
			return cu, fmt.Errorf("journeyctl: consumer %s: %w", durable, err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			return cu, fmt.Errorf("journeyctl: consumer %s: %w", durable, err)
		}
		cons[p] = c
		total += int64(info.NumPending) + int64(info.NumAckPending)
	}
	em := &withheld{}
	sink := &variantSink{v: variant}
	prog := NewProgress(e.Err, e.TTY, e.ProgressEvery, desc, "events", total)
	defer prog.Finish()
	// Partitions are independent (a customer lives in one): a few run side
	// by side, so that one's ClickHouse insert overlaps another's reads.
	results := make([]CatchUp, parts)
	errs := make([]error, parts)
	sem := make(chan struct{}, catchUpParallel)
	var wg sync.WaitGroup
	for p := range parts {
		proj, err := projection.New(projection.Options{Rules: rb, Store: store, Sink: sink, Emitter: em, Index: index,
			Partition: p, CacheSize: 10000, History: projector.NewStreamHistory(js, timeout)})
		if err != nil {
			return cu, err
		}
		results[p].Positions = map[int]uint64{}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[p] = e.catchUpPartition(ctx, cons[p], proj, p, &results[p], prog)
		}()
	}
	wg.Wait()
	for p := range parts {
		r := results[p]
		cu.Events, cu.Skipped, cu.Rejected = cu.Events+r.Events, cu.Skipped+r.Skipped, cu.Rejected+r.Rejected
		for k, v := range r.Positions {
			cu.Positions[k] = v
		}
	}
	cu.Withheld, cu.Customers = int(em.n.Load()), int(sink.customers.Load())
	return cu, errors.Join(errs...)
}

// catchUpParallel bounds the partitions a catch-up applies at once.
const catchUpParallel = 4

// catchUpPartition applies one partition's pending events in batches and
// acks each batch once it is committed, until the consumer has nothing
// pending. Then it runs the inactivity sweep once.
func (e *Env) catchUpPartition(ctx context.Context, c jetstream.Consumer, proj *projection.Projector, p int, cu *CatchUp, prog Progress) error {
	for {
		// No wait: what the consumer holds now is what this run owes;
		// whatever arrives later is the projector's once it switches.
		batch, err := c.FetchNoWait(fetchBatch)
		if err != nil {
			return fmt.Errorf("journeyctl: read partition %d: %w", p, err)
		}
		var got []jetstream.Msg
		var msgs []projection.Msg
		now := e.now()
		for m := range batch.Messages() {
			got = append(got, m)
			md, err := m.Metadata()
			if err != nil {
				return err
			}
			cu.Positions[p] = max(cu.Positions[p], md.Sequence.Stream)
			pm, err := projector.Decode(m, now)
			if err != nil {
				cu.Skipped++ // the live projector dead-letters it; once is enough
				continue
			}
			msgs = append(msgs, pm)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, jetstream.ErrNoHeartbeat) {
			return fmt.Errorf("journeyctl: read partition %d: %w", p, err)
		}
		if len(got) == 0 {
			// Done unless a killed run left events delivered and not
			// acked: they come back after the consumer's AckWait.
			info, err := c.Info(ctx)
			if err != nil {
				return fmt.Errorf("journeyctl: partition %d: %w", p, err)
			}
			if info.NumPending == 0 && info.NumAckPending == 0 {
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
			continue
		}
		var rejected []projection.Rejected
		// A conflict or an outage is retried a while; past that the
		// operator sees the error, and running the command again resumes.
		attempts := 0
		err = retry.Do(ctx, retry.Policy{Initial: 100 * time.Millisecond, Max: 2 * time.Second,
			Permanent: func(error) bool { attempts++; return attempts >= 20 },
			OnRetry: func(_ int, err error, wait time.Duration) {
				e.Log.Warn("shadow batch not committed; retrying", "partition", p, "err", err, "in", wait)
			}}, func(ctx context.Context) error {
			var err error
			rejected, err = proj.Process(ctx, msgs)
			return err
		})
		if err != nil {
			return fmt.Errorf("journeyctl: apply partition %d: %w", p, err)
		}
		cu.Rejected += len(rejected)
		for _, m := range got {
			if err := m.DoubleAck(ctx); err != nil {
				return fmt.Errorf("journeyctl: ack partition %d: %w", p, err)
			}
		}
		cu.Events += len(msgs)
		prog.Add(len(got))
	}
	for {
		n, _, err := proj.Sweep(ctx)
		if err != nil {
			return fmt.Errorf("journeyctl: sweep partition %d: %w", p, err)
		}
		if n == 0 {
			return nil
		}
	}
}

// withheld is the shadow's Emitter: it counts and drops.
type withheld struct{ n atomic.Int64 }

func (w *withheld) Emit(_ context.Context, events []touchpoint.Event) error {
	w.n.Add(int64(len(events)))
	return nil
}

// variantSink writes a batch's rows straight into the version's tables:
// the one-off run has no outbox, and the insert is idempotent.
type variantSink struct {
	v         *warehouse.Variant
	customers atomic.Int64
}

func (s *variantSink) Write(ctx context.Context, updates []projection.Update) error {
	states, transitions, responses := projector.Rows(updates)
	if err := s.v.WriteProjection(ctx, states, transitions, responses); err != nil {
		return err
	}
	s.customers.Add(int64(len(states)))
	return nil
}
