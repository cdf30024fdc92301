package stream

import (
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// PullHeartbeat is the idle heartbeat a long-lived pull iterator asks the
// server for (jetstream.PullHeartbeat).
const PullHeartbeat = 5 * time.Second

// SilentPull is how long a pull iterator may deliver nothing before its
// reader pulls afresh: twice the heartbeat, the gap after which nats.go
// itself would call the pull request lost.
const SilentPull = 2 * PullHeartbeat

// ErrSilentPull is returned by [Watched.Next] once the iterator has
// delivered nothing for its limit: the reader ends the iterator and opens
// a new one.
var ErrSilentPull = errors.New("stream: the pull delivered nothing for its silence limit; pull again")

// Watched is a pull iterator read with short waits (a reader that also
// sweeps, checkpoints or shuts down between messages) that notices when
// its pull request is gone.
//
// nats.go re-issues a pull whose heartbeats stopped, but it watches them
// only inside one Next call that lasts twice the heartbeat. Readers that
// wait a second at a time never saw it: a pull request that vanished with
// its consumer's leader (a SIGKILLed node the client was not connected to
// sends no status) was never issued again, and the consumer stalled with
// messages pending for good. Watched adds up the waits that timed out in
// a row; at the limit it returns ErrSilentPull. An idle consumer then
// pulls afresh every limit, one request, the cost of the heartbeats it
// stands in for.
type Watched struct {
	it     jetstream.MessagesContext
	limit  time.Duration
	silent time.Duration
}

// Watch wraps it; limit is normally SilentPull.
func Watch(it jetstream.MessagesContext, limit time.Duration) *Watched {
	return &Watched{it: it, limit: limit}
}

// Next is it.Next with a wait of at most wait. It returns nats.ErrTimeout
// when nothing came within wait, ErrSilentPull instead when the timed-out
// waits since the last message add up to the limit, and the iterator's
// other errors as they are.
func (w *Watched) Next(wait time.Duration) (jetstream.Msg, error) {
	start := time.Now()
	m, err := w.it.Next(jetstream.NextMaxWait(wait))
	if err == nil {
		w.silent = 0
		return m, nil
	}
	if errors.Is(err, nats.ErrTimeout) {
		w.silent += time.Since(start)
		if w.silent >= w.limit {
			w.silent = 0
			return nil, ErrSilentPull
		}
	}
	return nil, err
}

// HandBack drains it and negatively acknowledges what it had delivered
// but not yet handed out, so that the consumer's next pull (this reader's
// or another's) gets those messages at once instead of after AckWait. A
// lost Nak only means that wait. It returns how many messages were handed
// back.
//
// Until the drain ends, the server may redeliver a nakked message to the
// same pull: that copy is nakked again but counted once (by stream
// sequence), or the count said 3 or 4 for 2 messages.
func HandBack(it jetstream.MessagesContext) int {
	it.Drain()
	seen := map[uint64]bool{}
	other := 0 // a message without JetStream metadata: not one of a consumer's
	for {
		m, err := it.Next(jetstream.NextMaxWait(200 * time.Millisecond))
		if err != nil {
			return len(seen) + other
		}
		_ = m.Nak()
		if md, err := m.Metadata(); err == nil {
			seen[md.Sequence.Stream] = true
		} else {
			other++
		}
	}
}
