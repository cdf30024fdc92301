package journeyctl

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/stream"
)

// dryRun counts the selection per kind and per partition, sending nothing
// and recording nothing.
func (c *ReplayCmd) dryRun(ctx context.Context, env *Env, p plan) error {
	js, err := env.JS(ctx)
	if err != nil {
		return err
	}
	end, err := lastSeq(ctx, env)
	if err != nil {
		return err
	}
	st := &ReplayState{ID: c.ID, Selection: p.sel, Target: p.target, Subject: p.subject, EndSeq: end, State: "dry_run"}
	if st.ID == "" && p.target != "" {
		st.ID = replayID(p.sel, p.target)
	}
	st.Counts.init()
	var prog Progress
	onTotal := func(n int64) { prog = NewProgress(env.Err, env.TTY, env.ProgressEvery, "dry run", "events", n) }
	r := &replayer{st: st}
	err = readSlice(ctx, js, p.sel, 0, end, onTotal, func(m jetstream.Msg, md *jetstream.MsgMetadata) error {
		r.commit(r.prepare(m, md))
		if prog != nil {
			prog.Add(1)
		}
		return nil
	})
	if prog != nil {
		prog.Finish()
	}
	if err != nil {
		return err
	}
	return env.emit(replayReport(st, true), func(w io.Writer) { printReplay(w, st) })
}

// ReplayReport is what `replay` prints with --json.
type ReplayReport struct {
	ReplayID  string         `json:"replay_id,omitempty"`
	DryRun    bool           `json:"dry_run"`
	State     string         `json:"state"`
	Target    string         `json:"target,omitempty"`
	Subject   string         `json:"subject,omitempty"`
	Selection map[string]any `json:"selection"`
	Filters   []string       `json:"filters"`
	EndSeq    uint64         `json:"end_seq"`
	LastSeq   uint64         `json:"last_seq,omitempty"`
	Resumes   int            `json:"resumes,omitempty"`
	Elapsed   string         `json:"elapsed,omitempty"`
	Counts    ReplayCounts   `json:"counts"`
}

func replayReport(st *ReplayState, dry bool) ReplayReport {
	r := ReplayReport{ReplayID: st.ID, DryRun: dry, State: st.State, Target: st.Target, Subject: st.Subject,
		Selection: st.Selection.Map(), Filters: st.Selection.Filters(), EndSeq: st.EndSeq, Resumes: st.Resumes, Counts: st.Counts}
	if !dry {
		r.LastSeq, r.Elapsed = st.LastSeq, st.Elapsed.Round(time.Millisecond).String()
	}
	return r
}

// printReplay prints the counts as two small tables.
func printReplay(w io.Writer, st *ReplayState) {
	c := st.Counts
	if st.State == "dry_run" {
		fmt.Fprintf(w, "dry run: %d of %d messages read are selected (%d undecodable); nothing sent\n", c.Selected, c.Scanned, c.Undecodable)
	} else {
		fmt.Fprintf(w, "replay %s -> %s: %s\n", st.ID, st.Subject, st.State)
		fmt.Fprintf(w, "selected %d of %d read; published %d, duplicates dropped %d, undecodable %d; position %d of %d", c.Selected, c.Scanned,
			c.Published, c.Duplicates, c.Undecodable, st.LastSeq, st.EndSeq)
		if st.Resumes > 0 {
			fmt.Fprintf(w, "; resumed %d time(s)", st.Resumes)
		}
		fmt.Fprintln(w)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tEVENTS")
	for _, k := range sortedKeys(c.ByKind, false) {
		fmt.Fprintf(tw, "%s\t%d\n", k, c.ByKind[k])
	}
	fmt.Fprintln(tw, "\nPARTITION\tEVENTS")
	for _, p := range sortedKeys(c.ByPartition, true) {
		fmt.Fprintf(tw, "%s\t%d\n", p, c.ByPartition[p])
	}
	_ = tw.Flush()
}

func sortedKeys(m map[string]int, numeric bool) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, func(a, b string) int {
		if numeric {
			x, _ := strconv.Atoi(a)
			y, _ := strconv.Atoi(b)
			return x - y
		}
		return strings.Compare(a, b)
	})
	return ks
}

// warnNoReader says so when no consumer of the replay stream reads the
// target's subjects: the copies would wait there (for the stream's max
// age) until a writer or projector with JOURNEY_*_INPUT=replay starts.
func warnNoReader(ctx context.Context, js jetstream.JetStream, target string, w io.Writer) {
	s, err := js.Stream(ctx, stream.ReplayStream)
	if err != nil {
		return
	}
	prefix := stream.ReplayPrefix(target) + "."
	names := s.ListConsumers(ctx)
	for ci := range names.Info() {
		fs := append([]string{ci.Config.FilterSubject}, ci.Config.FilterSubjects...)
		for _, f := range fs {
			if strings.HasPrefix(f, prefix) {
				return
			}
		}
	}
	service, env := "journey-writer", "JOURNEY_WRITER_INPUT=replay"
	if target == stream.ReplayProjector {
		service, env = "journey-projector", "JOURNEY_PROJECTOR_INPUT=replay"
	}
	fmt.Fprintf(w, "warning: no consumer of %s reads %s>: the copies wait in the stream until a %s with %s starts\n", stream.ReplayStream, prefix, service, env)
}
