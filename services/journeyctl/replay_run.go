package journeyctl

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/klantreis/journey/pkg/stream"
)

// readSlice reads the selection's messages from TOUCHPOINTS with an
// ordered consumer (no server state left behind; the client recreates it
// after a broker hiccup), starting after `after` (or at --since, or at the
// beginning) and ending at end, and calls fn for each one in stream order.
// The consumer's subject filters narrow it to the selected kinds and
// customers, so the server sends only those.
func readSlice(ctx context.Context, js jetstream.JetStream, sel Selection, after, end uint64, onTotal func(int64), fn func(jetstream.Msg, *jetstream.MsgMetadata) error) error {
	if end == 0 || after >= end {
		return nil
	}
	s, err := js.Stream(ctx, stream.TouchpointStream)
	if err != nil {
		return fmt.Errorf("journeyctl: stream %s: %w", stream.TouchpointStream, err)
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: sel.Filters(), DeliverPolicy: jetstream.DeliverAllPolicy}
	switch {
	case after > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, after+1
	case !sel.Since.IsZero():
		since := sel.Since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	c, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("journeyctl: read %s: %w", stream.TouchpointStream, err)
	}
	first := true
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch, err := c.Fetch(500, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return fmt.Errorf("journeyctl: read %s: %w", stream.TouchpointStream, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return err
			}
			seq := md.Sequence.Stream
			if seq > end || !sel.Until.IsZero() && !md.Timestamp.Before(sel.Until) {
				return nil
			}
			if first {
				first = false
				if onTotal != nil {
					onTotal(int64(min(md.NumPending, end-seq) + 1))
				}
			}
			if err := fn(m, md); err != nil {
				return err
			}
			if seq == end || md.NumPending == 0 {
				return nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
			return fmt.Errorf("journeyctl: read %s: %w", stream.TouchpointStream, err)
		}
		if n == 0 {
			return nil // nothing more matches before end
		}
	}
}

// item is one message read, on its way to the target. Items are committed
// in stream order: the recorded position never passes a publish that has
// not been acknowledged.
type item struct {
	seq       uint64
	kind      string
	partition string
	selected  bool
	bad       bool // not a decodable event: counted, not sent
	msg       *nats.Msg
	fut       jetstream.PubAckFuture
}

// replayer runs one replay: read, select, publish (bounded window), commit
// in order, checkpoint.
type replayer struct {
	env        *Env
	js         jetstream.JetStream
	kv         jetstream.KeyValue
	st         *ReplayState
	rate       float64
	checkpoint time.Duration
	window     int

	queue    []*item
	inFlight int
	lastSave time.Time
	saved    uint64
}

func (r *replayer) run(ctx context.Context) error {
	st := r.st
	st.startedAt = r.env.now()
	if err := st.save(ctx, r.kv, r.env.now()); err != nil {
		return err
	}
	r.lastSave, r.saved = time.Now(), st.LastSeq
	var lim *rate.Limiter
	if r.rate > 0 {
		lim = rate.NewLimiter(rate.Limit(r.rate), 1)
	}
	var prog Progress
	onTotal := func(n int64) {
		prog = NewProgress(r.env.Err, r.env.TTY, r.env.ProgressEvery, "replay "+st.ID, "events", n)
	}
	err := readSlice(ctx, r.js, st.Selection, st.LastSeq, st.EndSeq, onTotal, func(m jetstream.Msg, md *jetstream.MsgMetadata) error {
		it := r.prepare(m, md)
		if it.selected && lim != nil {
			if err := lim.Wait(ctx); err != nil {
				return err
			}
		}
		if it.selected {
			fut, err := r.js.PublishMsgAsync(it.msg)
			if err != nil {
				return fmt.Errorf("journeyctl: publish to %s: %w", it.msg.Subject, err)
			}
			it.fut = fut
			r.inFlight++
		}
		r.queue = append(r.queue, it)
		if prog != nil {
			prog.Add(1)
		}
		return r.drain(ctx, r.inFlight >= r.window)
	})
	if err == nil {
		err = r.drain(ctx, true)
		for err == nil && len(r.queue) > 0 {
			err = r.drain(ctx, true)
		}
	}
	if prog != nil {
		prog.Finish()
	}
	now := r.env.now()
	if err == nil {
		// Read to the end: even when the last sequences were not selected
		// the slice is done.
		st.LastSeq, st.State, st.Finished = max(st.LastSeq, st.EndSeq), replayDone, now.UTC()
	}
	if serr := st.save(context.WithoutCancel(ctx), r.kv, now); serr != nil && err == nil {
		err = serr
	}
	if errors.Is(err, context.Canceled) {
		return errReplayStopped
	}
	return err
}

// prepare decodes and selects one message and builds its copy.
func (r *replayer) prepare(m jetstream.Msg, md *jetstream.MsgMetadata) *item {
	it := &item{seq: md.Sequence.Stream}
	if !r.st.Selection.StreamTimeOK(md.Timestamp) {
		return it
	}
	ev, err := stream.DecodeMsg(m.Headers(), m.Data())
	if err != nil {
		// The writer dead-lettered it long ago; a copy would only be
		// dead-lettered again.
		it.bad = true
		return it
	}
	if !r.st.Selection.Match(&ev) {
		return it
	}
	part, kind, _, ok := stream.ParseStoredSubject(m.Subject())
	tail, tok := stream.StoredTail(m.Subject())
	if !ok || !tok {
		it.bad = true
		return it
	}
	it.selected, it.kind, it.partition = true, string(kind), strconv.Itoa(part)
	if ev.Extensions == nil {
		ev.Extensions = map[string]string{}
	}
	ev.Extensions[ExtReplay] = r.st.ID
	msg := stream.NewMsg(r.st.Subject+"."+tail, &ev)
	msg.Header.Set(jetstream.MsgIDHeader, replayMsgID(r.st.ID, ev.Source, ev.ID))
	msg.Header.Set(stream.HeaderReplaySeq, strconv.FormatUint(it.seq, 10))
	msg.Header.Set(stream.HeaderReplayID, r.st.ID)
	it.msg = msg
	return it
}

// ExtReplay is the CloudEvents extension a replayed copy carries: the
// replay's id. The writer's content hash leaves extensions out, so a copy
// is the same event as its original.
const ExtReplay = "replay"

// drain commits the queue's head while its publishes are acknowledged;
// with block it waits for the head's ack.
func (r *replayer) drain(ctx context.Context, block bool) error {
	for len(r.queue) > 0 {
		it := r.queue[0]
		if it.fut != nil {
			var ack *jetstream.PubAck
			if !block {
				select {
				case ack = <-it.fut.Ok():
				case err := <-it.fut.Err():
					var e error
					if ack, e = r.retry(ctx, it, err); e != nil {
						return e
					}
				default:
					return r.maybeSave(ctx)
				}
			} else {
				var err error
				if ack, err = r.await(ctx, it); err != nil {
					return err
				}
			}
			r.inFlight--
			if ack.Duplicate {
				r.st.Counts.Duplicates++
			} else {
				r.st.Counts.Published++
			}
			block = false
		}
		r.commit(it)
		r.queue = r.queue[1:]
	}
	return r.maybeSave(ctx)
}

func (r *replayer) await(ctx context.Context, it *item) (*jetstream.PubAck, error) {
	select {
	case ack := <-it.fut.Ok():
		return ack, nil
	case err := <-it.fut.Err():
		return r.retry(ctx, it, err)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// retry republishes a copy whose publish failed (a timeout, a leader
// change): its message id makes a second copy a duplicate if the first
// one was stored after all.
func (r *replayer) retry(ctx context.Context, it *item, cause error) (*jetstream.PubAck, error) {
	if errors.Is(cause, jetstream.ErrNoStreamResponse) || errors.Is(cause, nats.ErrNoResponders) {
		return nil, fmt.Errorf("journeyctl: no JetStream stream captures %s: create one for the prefix, or pick a prefix a stream listens on: %w", it.msg.Subject, cause)
	}
	err := cause
	for attempt := 1; attempt <= 5; attempt++ {
		select {
		case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ack, e := r.js.PublishMsg(pctx, it.msg)
		cancel()
		if e == nil {
			return ack, nil
		}
		err = e
	}
	return nil, fmt.Errorf("journeyctl: publish to %s (sequence %d): %w", it.msg.Subject, it.seq, err)
}

func (r *replayer) commit(it *item) {
	c := &r.st.Counts
	c.Scanned++
	switch {
	case it.bad:
		c.Undecodable++
	case it.selected:
		c.Selected++
		c.ByKind[it.kind]++
		c.ByPartition[it.partition]++
	}
	r.st.LastSeq = it.seq
}

func (r *replayer) maybeSave(ctx context.Context) error {
	if r.st.LastSeq == r.saved || time.Since(r.lastSave) < r.checkpoint {
		return nil
	}
	if err := r.st.save(ctx, r.kv, r.env.now()); err != nil {
		return err
	}
	r.lastSave, r.saved = time.Now(), r.st.LastSeq
	return nil
}
