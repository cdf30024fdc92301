package journeyctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/klantreis/journey/pkg/opsjob"
	"github.com/klantreis/journey/pkg/stream"
)

// JobsCmd is `journeyctl jobs`: the ops actions asked for through the API
// (POST /v1/ops/jobs), which a worker runs as the commands they name.
type JobsCmd struct {
	Work JobsWorkCmd `cmd:"" help:"Run the queued jobs, one at a time, until stopped (or, with --once, until none is queued)."`
	List JobsListCmd `cmd:"" help:"The jobs, newest first, with their state."`
}

// JobsWorkCmd is `jobs work`.
type JobsWorkCmd struct {
	Poll time.Duration `default:"1s" help:"How often to look for a queued job."`
	Once bool          `help:"Exit once no job is queued (for cron and tests)."`
	Name string        `help:"The worker's name in the jobs (default: host-pid)."`
}

// heartbeat is how often a running job is confirmed (opsjob.Store.Stale
// is how long another worker waits before it takes the job over).
const heartbeat = 2 * time.Second

// Run claims and runs jobs. An error reading the queue (NATS restarting)
// is logged and retried at the next poll; a job's own failure is recorded
// in the job, not returned.
func (c *JobsWorkCmd) Run(ctx context.Context, env *Env) error {
	q, err := openJobs(ctx, env)
	if err != nil {
		return err
	}
	name := c.Name
	if name == "" {
		host, _ := os.Hostname()
		name = host + "-" + strconv.Itoa(os.Getpid())
	}
	ran := 0
	for ctx.Err() == nil {
		j, rev, ok, err := q.Claim(ctx, name, env.now())
		switch {
		case err != nil:
			env.Log.Warn("jobs queue unavailable, retrying", "err", err)
		case ok:
			ran++
			fmt.Fprintf(env.Err, "job %s: %s (%s, attempt %d)\n", j.ID, strings.Join(j.Args, " "), j.Actor, j.Attempts)
			j = runJob(ctx, env, q, j, rev)
			fmt.Fprintf(env.Err, "job %s: %s, exit %d\n", j.ID, j.State, j.Exit)
			continue
		case c.Once:
			return env.emit(map[string]int{"ran": ran}, func(w io.Writer) { fmt.Fprintf(w, "%d jobs run\n", ran) })
		}
		select {
		case <-ctx.Done():
		case <-time.After(c.Poll):
		}
	}
	return nil
}

// runJob runs one claimed job as journeyctl would with its arguments,
// --json and the job's actor, beating its heartbeat with the last progress
// line. A job another worker took over meanwhile (this one was paused past
// Stale) is stopped; a worker stopped itself hands its job back to the
// queue, where the same arguments resume it.
func runJob(ctx context.Context, env *Env, q *opsjob.Store, j opsjob.Job, rev uint64) opsjob.Job {
	jctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out bytes.Buffer
	progress := &lastLine{}
	jenv := &Env{Config: env.Config, Out: &out, Err: progress, ProgressEvery: heartbeat, Log: env.Log, Now: env.Now}
	done := make(chan int, 1)
	go func() { done <- Run(jctx, append([]string{"--json", "--actor", j.Actor}, j.Args...), jenv) }()
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	// Each write of the job gets a context of its own: the worker's may be
	// ending, and the job may run far longer than one write may take.
	update := func(j opsjob.Job, rev uint64) (uint64, error) {
		wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer wcancel()
		return q.Update(wctx, j, rev)
	}
	for {
		select {
		case code := <-done:
			now := env.now().UTC()
			if ctx.Err() != nil {
				j.State, j.Worker, j.Heartbeat, j.Progress = opsjob.Queued, "", nil, "handed back: the worker stopped"
			} else {
				j.State, j.Exit, j.Finished, j.Progress = opsjob.Done, code, &now, progress.last()
				if code != ExitOK {
					j.State = opsjob.Failed
				}
				j.Result, j.Error = resultOf(out.Bytes(), progress.last())
			}
			if _, err := update(j, rev); err != nil {
				env.Log.Error("recording a finished job", "job", j.ID, "err", err)
			}
			return j
		case <-tick.C:
			now := env.now().UTC()
			j.Heartbeat, j.Progress = &now, progress.last()
			n, err := update(j, rev)
			switch {
			case stream.IsWrongLastSeq(err):
				env.Log.Warn("job taken over by another worker; stopping it here", "job", j.ID)
				cancel()
				<-done
				return j
			case err != nil:
				env.Log.Warn("job heartbeat failed", "job", j.ID, "err", err)
			default:
				rev = n
			}
		}
	}
}

// resultOf is a finished command's --json document, and its error: Run
// prints {"error": …, "exit": …} on a failure.
func resultOf(out []byte, lastErr string) (json.RawMessage, string) {
	out = bytes.TrimSpace(out)
	if len(out) == 0 {
		return nil, lastErr
	}
	if !json.Valid(out) {
		raw, _ := json.Marshal(string(out))
		return raw, ""
	}
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(out, &e)
	return out, e.Error
}

// lastLine keeps the last non-empty line written to it (the command's
// progress and diagnostics).
type lastLine struct {
	mu   sync.Mutex
	line string
	part []byte
}

func (l *lastLine) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.part = append(l.part, p...)
	for {
		i := bytes.IndexByte(l.part, '\n')
		if i < 0 {
			break
		}
		if s := strings.TrimSpace(string(l.part[:i])); s != "" {
			l.line = s
		}
		l.part = l.part[i+1:]
	}
	return len(p), nil
}

func (l *lastLine) last() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.line
}

// openJobs opens the ops job queue on env's connection.
func openJobs(ctx context.Context, env *Env) (*opsjob.Store, error) {
	js, err := env.JS(ctx)
	if err != nil {
		return nil, err
	}
	return opsjob.Open(ctx, js, env.Config.Stream.Replicas)
}

// JobsListCmd is `jobs list`.
type JobsListCmd struct {
	Limit int `default:"20" help:"How many, newest first (0: all)."`
}

// Run prints the jobs.
func (c *JobsListCmd) Run(ctx context.Context, env *Env) error {
	q, err := openJobs(ctx, env)
	if err != nil {
		return err
	}
	jobs, err := q.List(ctx, c.Limit)
	if err != nil {
		return err
	}
	if jobs == nil {
		jobs = []opsjob.Job{}
	}
	return env.emit(map[string]any{"jobs": jobs}, func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATE\tEXIT\tACTOR\tCREATED\tCOMMAND")
		for _, j := range jobs {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", j.ID, j.State, j.Exit, j.Actor, j.Created.Format(time.RFC3339), strings.Join(j.Args, " "))
		}
		tw.Flush()
	})
}
