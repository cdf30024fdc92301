package journeyctl

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Replay states.
const (
	replayRunning = "running"
	replayDone    = "done"
)

// ReplayState is a replay's record in [OpsBucket]: what it selects, where
// it goes, how far it got. It is written every checkpoint interval and at
// the end; after a kill the replay continues after LastSeq.
type ReplayState struct {
	ID        string    `json:"id"`
	Selection Selection `json:"selection"`
	// Target is "subject:<prefix>", "warehouse" or "projector".
	Target string `json:"target"`
	// Subject is the prefix copies are published under.
	Subject string  `json:"subject"`
	Rate    float64 `json:"rate,omitempty"`
	// EndSeq is the stream's last sequence when the replay first started:
	// a replay reads up to it, also when resumed, so that it is one fixed
	// slice while live traffic keeps arriving.
	EndSeq uint64 `json:"end_seq"`
	// LastSeq is the last stream sequence whose event (if selected) the
	// target acknowledged; every sequence before it is done too.
	LastSeq   uint64        `json:"last_seq"`
	Counts    ReplayCounts  `json:"counts"`
	State     string        `json:"state"`
	Actor     string        `json:"actor"`
	Started   time.Time     `json:"started"`
	Updated   time.Time     `json:"updated"`
	Resumes   int           `json:"resumes,omitempty"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	Finished  time.Time     `json:"finished,omitzero"`
	kvRev     uint64
	startedAt time.Time
}

// ReplayCounts are a replay's counts: what it read, what it selected (by
// kind and by partition), what the target acknowledged.
type ReplayCounts struct {
	Scanned     int            `json:"scanned"`
	Selected    int            `json:"selected"`
	Published   int            `json:"published"`
	Duplicates  int            `json:"duplicates"` // dropped by the target's duplicate window (a resume's repeats)
	Undecodable int            `json:"undecodable"`
	ByKind      map[string]int `json:"by_kind"`
	ByPartition map[string]int `json:"by_partition"`
}

func (c *ReplayCounts) init() {
	if c.ByKind == nil {
		c.ByKind = map[string]int{}
	}
	if c.ByPartition == nil {
		c.ByPartition = map[string]int{}
	}
}

// flat is the counts as the audit records them.
func (c ReplayCounts) flat() map[string]int {
	m := map[string]int{"scanned": c.Scanned, "selected": c.Selected, "published": c.Published,
		"duplicates": c.Duplicates, "undecodable": c.Undecodable}
	for k, n := range c.ByKind {
		m["kind."+k] = n
	}
	for p, n := range c.ByPartition {
		m["partition."+p] = n
	}
	return m
}

func replayKey(id string) string { return "replay." + id }

// loadReplay reads a replay's record; (nil, nil) when there is none.
func loadReplay(ctx context.Context, kv jetstream.KeyValue, id string) (*ReplayState, error) {
	st, rev, err := loadRecord[ReplayState](ctx, kv, replayKey(id), "journeyctl: read replay "+id,
		fmt.Sprintf("journeyctl: replay %s: bad record in %s", id, OpsBucket))
	if st == nil {
		return nil, err
	}
	st.kvRev = rev
	st.Counts.init()
	return st, nil
}

// save writes the record with compare-and-set: two processes running the
// same replay at once would double its work, so the second one's write
// fails and it stops.
func (st *ReplayState) save(ctx context.Context, kv jetstream.KeyValue, now time.Time) error {
	st.Updated = now.UTC()
	if !st.startedAt.IsZero() {
		st.Elapsed += now.Sub(st.startedAt)
		st.startedAt = now
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	var rev uint64
	if st.kvRev == 0 {
		rev, err = kv.Create(ctx, replayKey(st.ID), b)
	} else {
		rev, err = kv.Update(ctx, replayKey(st.ID), b, st.kvRev)
	}
	if err != nil {
		return fmt.Errorf("journeyctl: record replay %s position (is another journeyctl running it?): %w", st.ID, err)
	}
	st.kvRev = rev
	return nil
}
