package writer

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// leases tracks every message this process holds (received, not yet
// acked) and when the server last confirmably restarted its AckWait
// clock. A message whose lease is too old may already have been
// redelivered to another writer, so it must not be inserted by this one.
type leases struct {
	mu sync.Mutex
	m  map[uint64]lease // by value: no allocation per held message
}

type lease struct {
	msg jetstream.Msg
	at  time.Time // last confirmed (re)start of the AckWait clock
	// lost is set when the server redelivered the message to us while we
	// still held the earlier delivery: the earlier one is then void.
	lost bool
}

func newLeases() *leases { return &leases{m: map[uint64]lease{}} }

// add registers a delivery; at is when the fetch that brought it started
// (the server started AckWait after that). It returns false if the stream
// sequence is already held: the server redelivered it, the held copy is
// marked lost and the new delivery must be dropped unacked.
func (l *leases) add(seq uint64, m jetstream.Msg, at time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := l.m[seq]; ok {
		old.lost = true
		l.m[seq] = old
		return false
	}
	l.m[seq] = lease{msg: m, at: at}
	return true
}

// valid reports whether seq's lease was confirmed after notBefore.
func (l *leases) valid(seq uint64, notBefore time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	ls, ok := l.m[seq]
	return ok && !ls.lost && ls.at.After(notBefore)
}

// release forgets the items' messages (acked, or left to redelivery).
func (l *leases) release(items []*item) {
	l.mu.Lock()
	for _, it := range items {
		delete(l.m, it.seq)
	}
	l.mu.Unlock()
}

func (l *leases) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// due returns the messages whose lease is older than olderThan.
func (l *leases) due(olderThan time.Time) (seqs []uint64, msgs []jetstream.Msg) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for seq, ls := range l.m {
		if !ls.lost && ls.at.Before(olderThan) {
			seqs = append(seqs, seq)
			msgs = append(msgs, ls.msg)
		}
	}
	return seqs, msgs
}

// confirm records that the in-progress acks sent at 'at' reached the server.
func (l *leases) confirm(seqs []uint64, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range seqs {
		if ls, ok := l.m[s]; ok && ls.at.Before(at) {
			ls.at = at
			l.m[s] = ls
		}
	}
}
