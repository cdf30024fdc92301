// Package simulator emits realistic customer journeys: visitors that look
// around, ask for quotes, order, reorder, complain, answer the NPS survey and
// go quiet; consumers and B2B accounts with a decision-making unit of several
// contacts. It feeds the local stack and is the load generator of every
// benchmark.
//
// The [Generator] is pure and reproducible from a seed. [Run] paces it
// (events per second, optional time compression, optional backfill of past
// months) into a [Sink]: the touchpoint stream directly, or the collector's
// HTTP batch endpoint.
package simulator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/time/rate"

	"github.com/klantreis/journey/pkg/publish"
	"github.com/klantreis/journey/pkg/stream"
)

// Config is the simulator's configuration (JOURNEY_*).
type Config struct {
	NATS      stream.Conn     `envconfig:"NATS"`
	Stream    stream.Topology `envconfig:"STREAM"`
	Simulator Settings        `envconfig:"SIMULATOR"`
}

// Settings are the simulator's own settings (JOURNEY_SIMULATOR_*).
type Settings struct {
	// Rate is the live pace in events per second (default 50); 0 is as fast
	// as the sink takes them.
	Rate float64 `envconfig:"RATE" default:"50"`
	// Customers is the active population (default 1000).
	Customers int `envconfig:"CUSTOMERS" default:"1000"`
	// Seed makes a run reproducible; 0 (the default) picks one from the
	// clock and logs it, so two runs do not share event ids.
	Seed uint64 `envconfig:"SEED" default:"0"`
	// Compression is simulated seconds per real second in the live phase:
	// at 86400 a customer's day passes in a second. 0 (default) paces by
	// Rate alone. Live events are stamped with the wall clock either way,
	// so no event lies in the future.
	Compression float64 `envconfig:"COMPRESSION" default:"0"`
	// Backfill writes this much history first (e.g. 2160h for 90 days),
	// with past event times, at BackfillRate, then goes live. 0: no history.
	Backfill time.Duration `envconfig:"BACKFILL" default:"0"`
	// BackfillRate in events per second; 0 (default) is as fast as the sink
	// takes them.
	BackfillRate float64 `envconfig:"BACKFILL_RATE" default:"0"`
	// B2BShare of customers that are accounts with several contacts.
	B2BShare float64 `envconfig:"B2B_SHARE" default:"0.3"`
	// Limit stops the run after this many events; 0 runs until stopped.
	Limit int64 `envconfig:"LIMIT" default:"0"`
	// Sink is "nats" (default: through pkg/publish, as a Go product system
	// publishes), "jetstream" (raw JetStream async publish: the baseline of
	// benchmarks) or "collector" (HTTP batches to CollectorURL).
	Sink string `envconfig:"SINK" default:"nats"`
	// Source prefixes the CloudEvents source (default "simulator").
	Source string `envconfig:"SOURCE" default:"simulator"`
	// CollectorURL is the collector's events endpoint.
	CollectorURL string `envconfig:"COLLECTOR_URL" default:"http://127.0.0.1:8088/v1/events"`
	// CollectorToken is the bearer token for the collector.
	CollectorToken string `envconfig:"COLLECTOR_TOKEN"`
	// BatchSize is the collector batch length (default 100).
	BatchSize int `envconfig:"BATCH_SIZE" default:"100"`
	// FlushInterval bounds how long an event waits in a partial batch or
	// for its ack before the simulator flushes (default 250ms).
	FlushInterval time.Duration `envconfig:"FLUSH_INTERVAL" default:"250ms"`
}

// ErrConfig marks a bad setting.
var ErrConfig = errors.New("simulator: bad config")

func (s Settings) validate() error {
	switch {
	case s.Rate < 0 || s.BackfillRate < 0 || s.Compression < 0:
		return fmt.Errorf("%w: JOURNEY_SIMULATOR_RATE, _BACKFILL_RATE and _COMPRESSION must not be negative", ErrConfig)
	case s.Customers < 1:
		return fmt.Errorf("%w: JOURNEY_SIMULATOR_CUSTOMERS must be at least 1, got %d", ErrConfig, s.Customers)
	case s.Backfill < 0:
		return fmt.Errorf("%w: JOURNEY_SIMULATOR_BACKFILL must not be negative", ErrConfig)
	case s.Sink != "nats" && s.Sink != "jetstream" && s.Sink != "collector":
		return fmt.Errorf("%w: JOURNEY_SIMULATOR_SINK must be nats, jetstream or collector, got %q", ErrConfig, s.Sink)
	case s.FlushInterval <= 0:
		return fmt.Errorf("%w: JOURNEY_SIMULATOR_FLUSH_INTERVAL must be positive", ErrConfig)
	}
	return nil
}

// Run connects the configured sink and emits events until ctx is cancelled
// or Limit is reached, then flushes what is pending (for up to 10s) and
// returns. A sink failure ends the run with an error wrapping [ErrSink].
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	s := cfg.Simulator
	if err := s.validate(); err != nil {
		return err
	}
	var sink Sink
	switch s.Sink {
	case "nats", "jetstream":
		if cfg.NATS.Name == "" {
			cfg.NATS.Name = "journey-simulator"
		}
		nc, js, err := stream.Connect(cfg.NATS, log)
		if err != nil {
			return err
		}
		defer nc.Close()
		if err := cfg.Stream.Ensure(ctx, js); err != nil {
			return err
		}
		if s.Sink == "jetstream" {
			sink = NewJetStreamSink(js, 0)
			break
		}
		p, err := publish.New(js)
		if err != nil {
			return err
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			_ = p.Close(cctx)
		}()
		sink = NewPublisherSink(p, 0)
	case "collector":
		sink = NewCollectorSink(s.CollectorURL, s.CollectorToken, s.BatchSize, nil)
	}
	if s.Seed == 0 {
		s.Seed = uint64(time.Now().UnixNano())
	}
	log.Info("simulator starting", "sink", s.Sink, "seed", s.Seed, "customers", s.Customers,
		"rate", s.Rate, "backfill", s.Backfill, "compression", s.Compression)
	n, err := Pace(ctx, s, time.Now, sink, log)
	log.Info("simulator stopped", "events", n, "err", err)
	return err
}

// Pace runs a generator for s into sink and returns the number of events
// published. now is the wall clock (a parameter so that tests can run a
// backfill against a fixed "now").
func Pace(ctx context.Context, s Settings, now func() time.Time, sink Sink, log *slog.Logger) (int64, error) {
	t0 := now()
	p := &pacer{s: s, now: now, sink: sink, log: log, g: NewGenerator(Options{
		Seed:      s.Seed,
		Start:     t0.Add(-s.Backfill),
		Customers: s.Customers,
		B2BShare:  s.B2BShare,
		Source:    s.Source,
	})}
	p.lastFlush = now()
	if s.Backfill > 0 {
		if stop, err := p.backfill(ctx, t0); stop {
			return p.finish(ctx, err)
		}
	}
	return p.finish(ctx, p.live(ctx))
}

// pacer is one run of Pace: its generator and sink, and the events
// published so far.
type pacer struct {
	s         Settings
	now       func() time.Time
	sink      Sink
	log       *slog.Logger
	g         *Generator
	n         int64
	lastFlush time.Time
}

// finish flushes what the sink still holds and returns the count with the
// error the run ended on.
func (p *pacer) finish(ctx context.Context, err error) (int64, error) {
	// The run may have ended because ctx was cancelled: the last flush
	// must still get its chance.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if ferr := p.sink.Flush(fctx); err == nil && ferr != nil && ctx.Err() == nil {
		err = ferr
	}
	// Being stopped is the normal end of a run, not a failure.
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		err = nil
	}
	return p.n, err
}

// flushIfDue flushes the sink once FlushInterval has passed since the
// last flush.
func (p *pacer) flushIfDue(ctx context.Context) error {
	if t := p.now(); t.Sub(p.lastFlush) >= p.s.FlushInterval {
		p.lastFlush = t
		return p.sink.Flush(ctx)
	}
	return nil
}

// backfill publishes the history up to t0, the moment the run started, as
// fast as BackfillRate allows; events keep their simulated (past) times.
// stop says the run ends here, with err.
func (p *pacer) backfill(ctx context.Context, t0 time.Time) (stop bool, err error) {
	lim := limiter(p.s.BackfillRate)
	logged := p.now()
	for p.g.Peek().Before(t0) {
		if p.s.Limit > 0 && p.n >= p.s.Limit {
			return true, nil
		}
		if err := p.publishBackfill(ctx, lim); err != nil {
			return true, err
		}
		if t := p.now(); t.Sub(logged) > 5*time.Second {
			logged = t
			p.log.Info("simulator backfilling", "events", p.n, "at", p.g.Peek().Format(time.DateOnly))
		}
	}
	if err := p.sink.Flush(ctx); err != nil {
		return true, err
	}
	p.log.Info("simulator backfill done", "events", p.n)
	return false, nil
}

// publishBackfill publishes the next event as generated, paced by lim
// (nil: no limit).
func (p *pacer) publishBackfill(ctx context.Context, lim *rate.Limiter) error {
	e := p.g.Next()
	if lim != nil {
		if err := wait(ctx, lim); err != nil {
			return err
		}
	}
	if err := p.sink.Publish(ctx, e); err != nil {
		return err
	}
	p.n++
	return p.flushIfDue(ctx)
}

// live publishes until Limit or ctx ends the run: paced by Rate and, with
// Compression, by the simulated clock; stamped with the wall clock.
func (p *pacer) live(ctx context.Context) error {
	s := p.s
	lim := limiter(s.Rate)
	wall0, sim0 := p.now(), p.g.Peek()
	var timer *time.Timer
	for {
		if s.Limit > 0 && p.n >= s.Limit {
			return nil
		}
		if s.Compression > 0 {
			due := wall0.Add(time.Duration(float64(p.g.Peek().Sub(sim0)) / s.Compression))
			if d := due.Sub(p.now()); d > 0 {
				// Flush while idle: a slow simulated day must not hold
				// events in a partial batch.
				if d > s.FlushInterval {
					if err := p.sink.Flush(ctx); err != nil {
						return err
					}
				}
				if timer == nil {
					timer = time.NewTimer(d)
				} else {
					timer.Reset(d)
				}
				select {
				case <-ctx.Done():
					return nil
				case <-timer.C:
				}
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		e := p.g.Next()
		if lim != nil {
			if err := wait(ctx, lim); err != nil {
				return err
			}
		}
		e.Time = p.now().UTC().Truncate(time.Millisecond)
		if err := p.sink.Publish(ctx, e); err != nil {
			return err
		}
		p.n++
		if err := p.flushIfDue(ctx); err != nil {
			return err
		}
	}
}

// limiter returns a limiter for perSecond events a second, or nil for no
// limit. The burst is a tenth of a second's worth, so the pace is smooth.
func limiter(perSecond float64) *rate.Limiter {
	if perSecond <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(perSecond), max(1, int(perSecond/10)))
}

// wait waits for the limiter. The limiter refuses at once when the wait
// would pass ctx's deadline; the run then idles until the deadline, as it
// would have without the look-ahead.
func wait(ctx context.Context, lim *rate.Limiter) error {
	if err := lim.Wait(ctx); err != nil {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}
