package journeyctl

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/deadletter"
	"github.com/klantreis/journey/pkg/stream"
)

// StatusCmd is `journeyctl status`.
type StatusCmd struct {
	Sample time.Duration `default:"2s" help:"How long to watch the consumers to measure their drain rate for the ETA (0: no ETA)."`
}

// StreamStatus is one stream's state.
type StreamStatus struct {
	Name      string `json:"name"`
	Messages  uint64 `json:"messages"`
	Bytes     uint64 `json:"bytes"`
	FirstSeq  uint64 `json:"first_seq"`
	LastSeq   uint64 `json:"last_seq"`
	Consumers int    `json:"consumers"`
}

// ConsumerStatus is one TOUCHPOINTS consumer's lag: per partition, the
// messages after its ack floor (delivered-but-unacked included).
type ConsumerStatus struct {
	Name         string         `json:"name"`
	Filter       string         `json:"filter"`
	AckFloor     uint64         `json:"ack_floor_stream_seq"`
	Lag          uint64         `json:"lag"`
	LagPartition map[int]uint64 `json:"lag_per_partition"`
	RatePerSec   float64        `json:"drain_rate_per_sec"`
	// ETASeconds is lag / drain rate; -1 when nothing drained in the sample
	// while there is lag (stalled, or no consumer running).
	ETASeconds float64 `json:"eta_seconds"`
}

// Status is the whole report.
type Status struct {
	Streams     []StreamStatus            `json:"streams"`
	Consumers   []ConsumerStatus          `json:"consumers"`
	DeadLetters map[string]map[string]int `json:"dead_letters"` // consumer -> class -> count
	LastRebuild *Audit                    `json:"last_rebuild_or_rederive"`
	// Rules is the live rules version and what each projector runs
	// (rederive_status.go); nil when JOURNEY_OPS cannot be read.
	Rules *RulesStatus `json:"rules,omitempty"`
}

// Run gathers and prints the status.
func (c *StatusCmd) Run(ctx context.Context, env *Env) error {
	js, err := env.JS(ctx)
	if err != nil {
		return err
	}
	var st Status
	for _, name := range []string{stream.TouchpointStream, stream.DerivedStream, stream.DeadLetterStream, OpsStream} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return fmt.Errorf("journeyctl: stream %s: %w", name, err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			return fmt.Errorf("journeyctl: stream %s: %w", name, err)
		}
		st.Streams = append(st.Streams, StreamStatus{Name: name, Messages: info.State.Msgs, Bytes: info.State.Bytes,
			FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq, Consumers: info.State.Consumers})
	}
	if st.Consumers, err = consumerLag(ctx, js, env.Config.Stream.Partitions, c.Sample); err != nil {
		return err
	}
	dead, err := env.deadOps(js, nil).List(ctx, deadletter.Filter{})
	if err != nil {
		return err
	}
	st.DeadLetters = map[string]map[string]int{}
	for _, v := range dead {
		if st.DeadLetters[v.Consumer] == nil {
			st.DeadLetters[v.Consumer] = map[string]int{}
		}
		st.DeadLetters[v.Consumer][v.Class]++
	}
	if st.LastRebuild, err = lastRebuild(ctx, env); err != nil {
		return err
	}
	st.Rules = rulesStatus(ctx, env)
	return env.emit(st, func(w io.Writer) { printStatus(w, st) })
}

// consumerLag measures every durable TOUCHPOINTS consumer twice, sample
// apart, for its lag per partition and its drain rate.
func consumerLag(ctx context.Context, js jetstream.JetStream, partitions int, sample time.Duration) ([]ConsumerStatus, error) {
	s, err := js.Stream(ctx, stream.TouchpointStream)
	if err != nil {
		return nil, err
	}
	first := map[string]*jetstream.ConsumerInfo{}
	lister := s.ListConsumers(ctx)
	for ci := range lister.Info() {
		if ci.Config.Durable != "" {
			first[ci.Name] = ci
		}
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("journeyctl: list consumers: %w", err)
	}
	start := time.Now()
	if sample > 0 {
		select {
		case <-time.After(sample):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	var out []ConsumerStatus
	for name, a := range first {
		cons, err := s.Consumer(ctx, name)
		if err != nil {
			continue // deleted meanwhile
		}
		b, err := cons.Info(ctx)
		if err != nil {
			return nil, err
		}
		cs := ConsumerStatus{Name: name, Filter: strings.Join(append([]string{b.Config.FilterSubject}, b.Config.FilterSubjects...), " "),
			AckFloor: b.AckFloor.Stream, LagPartition: map[int]uint64{}, ETASeconds: -1}
		for p := range partitions {
			n, err := pendingAfter(ctx, s, b, p)
			if err != nil {
				return nil, err
			}
			if n > 0 {
				cs.LagPartition[p] = n
				cs.Lag += n
			}
		}
		if el := time.Since(start).Seconds(); sample > 0 && el > 0 {
			cs.RatePerSec = float64(b.AckFloor.Consumer-a.AckFloor.Consumer) / el
		}
		switch {
		case cs.Lag == 0:
			cs.ETASeconds = 0
		case cs.RatePerSec > 0:
			cs.ETASeconds = float64(cs.Lag) / cs.RatePerSec
		}
		out = append(out, cs)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// pendingAfter counts the messages of partition p after the consumer's ack
// floor that its filter selects, through a short-lived consumer's pending
// count (the server counts; nothing is read).
func pendingAfter(ctx context.Context, s jetstream.Stream, ci *jetstream.ConsumerInfo, p int) (uint64, error) {
	part := stream.PartitionFilter(p)
	filters := append([]string{ci.Config.FilterSubject}, ci.Config.FilterSubjects...)
	sel := []string{}
	for _, f := range filters {
		switch {
		case f == "" || f == stream.AllFactsFilter || f == ">" || f == "touchpoint.>":
			sel = append(sel, part)
		case f == part || strings.HasPrefix(f, strings.TrimSuffix(part, ">")):
			sel = append(sel, f)
		}
	}
	if len(sel) == 0 {
		return 0, nil
	}
	c, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubjects: sel, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: ci.AckFloor.Stream + 1,
		AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: 10 * time.Second, MemoryStorage: true,
	})
	if err != nil {
		return 0, fmt.Errorf("journeyctl: count lag of %s: %w", ci.Name, err)
	}
	info := c.CachedInfo()
	_ = s.DeleteConsumer(ctx, info.Name)
	return info.NumPending, nil
}

// lastRebuild is the newest rebuild or re-derive in the audit trail.
func lastRebuild(ctx context.Context, env *Env) (*Audit, error) {
	db, err := env.DB(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := db.Conn.Query(ctx, `SELECT at, event_id, actor, action, outcome, error FROM ops_audit
 WHERE action LIKE 'rebuild.%' OR action LIKE 'rederive.%' ORDER BY at DESC LIMIT 1`)
	if err != nil {
		return nil, fmt.Errorf("journeyctl: read ops_audit: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, rows.Err()
	}
	var a Audit
	if err := rows.Scan(&a.At, &a.ID, &a.Actor, &a.Action, &a.Outcome, &a.Error); err != nil {
		return nil, err
	}
	return &a, nil
}

func printStatus(w io.Writer, st Status) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tMESSAGES\tBYTES\tFIRST\tLAST\tCONSUMERS")
	for _, s := range st.Streams {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\n", s.Name, s.Messages, s.Bytes, s.FirstSeq, s.LastSeq, s.Consumers)
	}
	fmt.Fprintln(tw, "\nCONSUMER\tLAG\tRATE/s\tETA\tLAG PER PARTITION")
	for _, c := range st.Consumers {
		eta := "stalled"
		if c.ETASeconds >= 0 {
			eta = (time.Duration(c.ETASeconds * float64(time.Second))).Round(time.Second).String()
		}
		parts := make([]string, 0, len(c.LagPartition))
		for p, n := range c.LagPartition {
			parts = append(parts, fmt.Sprintf("%d:%d", p, n))
		}
		sort.Strings(parts)
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\n", c.Name, c.Lag, c.RatePerSec, eta, strings.Join(parts, " "))
	}
	tw.Flush()
	fmt.Fprintln(w, "\nDEAD LETTERS")
	if len(st.DeadLetters) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for cons, classes := range st.DeadLetters {
		fmt.Fprintf(w, "  %s: %s\n", cons, countLine(classes))
	}
	if a := st.LastRebuild; a != nil {
		fmt.Fprintf(w, "\nLAST REBUILD/RE-DERIVE: %s at %s by %s: %s %s\n", a.Action, a.At.Format(time.RFC3339), a.Actor, a.Outcome, a.Error)
	} else {
		fmt.Fprintln(w, "\nLAST REBUILD/RE-DERIVE: none")
	}
	printRules(w, st.Rules)
}
