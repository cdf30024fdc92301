package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klantreis/journey/pkg/publish"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/services/simulator"
)

// Path is how the load enters the system.
type Path string

const (
	// ViaPublisher: pkg/publish, the Go client product systems import.
	ViaPublisher Path = "publisher"
	// ViaCollector: HTTP batches of 100 to the collector.
	ViaCollector Path = "collector"
)

// errNotStored: the sender gave up on some events (and said so to its
// caller). On an overloaded machine that is a result, not a bench failure.
var errNotStored = errors.New("bench: events not stored")

// loadResult is what one paced window sent.
type loadResult struct {
	target   float64
	elapsed  time.Duration
	accepted int64 // stored by the stream (acked, not a duplicate)
	failed   int64 // refused or not stored after retries (events; batches x 100 via the collector)
	retried  int64 // stored, but acked only on a retry (reported as a duplicate)
	perSec   []int64
}

func (r loadResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.accepted) / r.elapsed.Seconds()
}

// generator makes the events of one system: the simulator's journeys,
// stamped with the wall clock at send time (as the simulator's live mode
// does), so that the projector's rules see a plausible present.
type generator struct {
	g *simulator.Generator
}

func newGenerator(seed uint64, customers int) *generator {
	return &generator{g: simulator.NewGenerator(simulator.Options{
		Seed: seed, Start: time.Now().Add(-30 * 24 * time.Hour), Customers: customers, Source: "bench",
	})}
}

func (g *generator) next(t time.Time) touchpoint.Event {
	e := g.g.Next()
	e.Time = t.UTC().Truncate(time.Millisecond)
	return e
}

// pace calls emit for rate events a second during dur (rate <= 0: as fast
// as emit returns). Behind schedule it catches up rather than dropping
// events, including a final top-up to rate x dur (up to a tenth of dur
// late), so that a late wake-up of the pacer itself does not count
// against the system; a sink that cannot keep up shows as an achieved rate
// below target.
func pace(ctx context.Context, rate float64, dur time.Duration, gen *generator, emit func(e touchpoint.Event, t time.Time) error) (n int64, perSec []int64, elapsed time.Duration, err error) {
	start := time.Now()
	end := start.Add(dur)
	grace := end.Add(dur / 10)
	perSec = make([]int64, int(dur/time.Second)+1)
	for {
		now := time.Now()
		if ctx.Err() != nil {
			return n, perSec, now.Sub(start), ctx.Err()
		}
		target := int64(rate * min(now.Sub(start), dur).Seconds())
		if rate <= 0 {
			target = n + 256
			if !now.Before(end) {
				target = n
			}
		}
		if n >= target || now.After(grace) {
			if !now.Before(end) {
				return n, perSec, now.Sub(start), nil
			}
			time.Sleep(time.Millisecond)
			continue
		}
		// Emit the deficit in slices, re-reading the clock between them.
		for k := 0; n < target && k < 256; k++ {
			t := time.Now()
			if err := emit(gen.next(t), t); err != nil {
				return n, perSec, time.Since(start), err
			}
			n++
			if s := int(t.Sub(start) / time.Second); s < len(perSec) {
				perSec[s]++
			}
		}
	}
}

// tracked is one published event on its way to its ack.
type tracked struct {
	pe     *publish.Pending
	t      time.Time
	key    string
	cust   string
	sample bool
}

// runPublisher sends paced load through pkg/publish. Every event's result
// is awaited (in order, by one goroutine), so accepted counts what the
// stream stored; every sampleEvery-th event is handed to lat with its
// stream sequence, and every event's id to lat for the derived events.
func runPublisher(ctx context.Context, sys *system, gen *generator, rate float64, dur time.Duration, lat *latency, sampleEvery int) (loadResult, error) {
	res := loadResult{target: rate}
	pub, err := publish.New(sys.js)
	if err != nil {
		return res, err
	}
	acks := make(chan tracked, publish.DefaultMaxPending)
	var accepted, failed, retried atomic.Int64
	var firstErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		for tr := range acks {
			r, err := tr.pe.Wait(context.Background())
			switch {
			case err != nil:
				if failed.Add(1) == 1 {
					firstErr = err
				}
			case r.Duplicate:
				// The generator's ids are unique, so a duplicate is a
				// retry whose first attempt was stored but not acked in
				// time (pkg/publish's ack timeout, on a loaded machine):
				// stored once, counted once.
				accepted.Add(1)
				retried.Add(1)
			default:
				accepted.Add(1)
				if tr.sample && lat != nil {
					lat.sampled(r.Seq, tr.t, tr.key, tr.cust)
				}
			}
		}
	}()
	var i int
	n, perSec, elapsed, err := pace(ctx, rate, dur, gen, func(e touchpoint.Event, t time.Time) error {
		if lat != nil {
			lat.published(e.ID, t)
		}
		pe, err := pub.PublishAsync(e)
		if err != nil {
			return err
		}
		i++
		sample := sampleEvery > 0 && i%sampleEvery == 0
		tr := tracked{pe: pe, t: t, sample: sample}
		if sample {
			tr.key, tr.cust = stream.CustomerKey(e.Subject), e.Subject
		}
		acks <- tr
		return nil
	})
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	cerr := pub.Close(cctx)
	cancel()
	close(acks)
	<-done
	res.elapsed, res.perSec = elapsed, perSec
	res.accepted, res.failed, res.retried = accepted.Load(), failed.Load(), retried.Load()
	_ = n
	if err == nil {
		err = cerr
	}
	if err == nil && firstErr != nil {
		err = fmt.Errorf("%w: %d events not stored, first: %w", errNotStored, res.failed, firstErr)
	}
	return res, err
}

// runCollector sends paced load to the collector in CloudEvents batches
// of 100 over workers concurrent connections (the simulator's collector
// sink, which retries 429 and 503 after Retry-After).
func runCollector(ctx context.Context, sys *system, gen *generator, rate float64, dur time.Duration, workers int) (loadResult, error) {
	res := loadResult{target: rate}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers}}
	defer client.CloseIdleConnections()
	events := make(chan touchpoint.Event, 100*workers)
	var accepted, failed atomic.Int64
	var errMu sync.Mutex
	var firstErr error
	note := func(err error) {
		failed.Add(1)
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := simulator.NewCollectorSink(sys.collectorURL, collectorToken, 100, client)
			for e := range events {
				if err := s.Publish(ctx, e); err != nil && !errors.Is(err, context.Canceled) {
					note(err)
				}
			}
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			if err := s.Flush(fctx); err != nil {
				note(err)
			}
			cancel()
			accepted.Add(s.Published)
		}()
	}
	_, perSec, elapsed, err := pace(ctx, rate, dur, gen, func(e touchpoint.Event, _ time.Time) error {
		select {
		case events <- e:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(events)
	wg.Wait()
	res.elapsed, res.perSec = elapsed, perSec
	res.accepted, res.failed = accepted.Load(), failed.Load()
	if err == nil && firstErr != nil {
		err = fmt.Errorf("%w: %d collector batches failed, first: %w", errNotStored, res.failed, firstErr)
	}
	return res, err
}
