package bench_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/klantreis/journey/bench/system"
	"github.com/klantreis/journey/internal/warehousetest"
)

// TestMain doubles as the children's program: the bench starts this test
// binary again with JOURNEY_BENCH_SERVE naming a service, as
// journey-bench's main does.
func TestMain(m *testing.M) {
	if name := os.Getenv(bench.ServeEnv); name != "" {
		os.Exit(serveChild(name))
	}
	os.Exit(warehousetest.Main(m))
}

func serveChild(name string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cfg, err := bench.ServiceConfig(name)
	if err == nil {
		err = envconfig.Process("JOURNEY", cfg)
	}
	if err == nil {
		err = bench.Serve(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		return 1
	}
	return 0
}

// TestTinyRun runs every phase with very small numbers against the real
// services, NATS and ClickHouse: it checks the bench works and what it
// must hold on any machine (no event lost or duplicated, every figure
// measured), not how fast anything is.
func TestTinyRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole system several times")
	}
	addr := warehousetest.Addr(t)
	o := bench.Short()
	o.Mode = "test"
	o.Exe = os.Args[0]
	o.Env = os.Environ()
	o.ClickHouseAddr = addr
	o.WorkDir = t.TempDir()
	o.Runs = 1
	o.CeilingEvents = 2000
	o.StepWindow = time.Second
	o.ConfirmWindow = 2 * time.Second
	o.MaxConfirms = 1
	o.Budget = 0
	o.StartRate = 300
	o.MaxSteps = 2
	o.Bisect = 0
	o.DrainWait = 5 * time.Second
	o.LatencyRate = 300
	o.LatencyRuns = 1
	o.LatencyWindow = time.Second
	o.Soak = 3 * time.Second
	o.Customers = 200
	o.CollectorWorkers = 2
	o.Commit = "test"
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	rep, err := bench.Run(ctx, o, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	c := rep.Ceiling
	if c.Publish <= 0 || c.Pull <= 0 || c.Ordered <= 0 || c.Insert <= 0 {
		t.Errorf("a ceiling was not measured: %+v", c)
	}
	for _, p := range []bench.Path{bench.ViaPublisher, bench.ViaCollector} {
		s := rep.Sustained[p]
		if s == nil || len(s.Coarse) == 0 || len(s.Runs) != 1 || len(s.Runs[0].Steps) == 0 {
			t.Fatalf("%s: no search steps: %+v", p, s)
		}
		if s.Candidate <= 0 || s.Runs[0].Steps[0].Target != s.Candidate || s.Runs[0].Steps[0].Window != o.ConfirmWindow {
			t.Errorf("%s: the run did not hold the candidate %.0f for %s first: %+v", p, s.Candidate, o.ConfirmWindow, s.Runs[0].Steps[0])
		}
		for _, st := range append(s.Coarse, s.Runs[0].Steps...) {
			if st.Accepted == 0 {
				t.Errorf("%s: a step at %.0f/s sent nothing", p, st.Target)
			}
		}
	}
	if len(rep.Latency) != 2 {
		t.Fatalf("%d latency results, want 2", len(rep.Latency))
	}
	for _, l := range rep.Latency {
		// 300 events/s for a second with one sample an event: the rows
		// and the states of those events are seen, whatever the speed.
		if l.Visible.N == 0 || l.State.N == 0 || l.API.N == 0 {
			t.Errorf("latency at %.0f/s: no samples resolved: visible %+v, state %+v, api %+v", l.Rate, l.Visible, l.State, l.API)
		}
		if l.Visible.P50 <= 0 || l.Visible.P99 < l.Visible.P50 || l.Visible.Max < l.Visible.P99 {
			t.Errorf("latency at %.0f/s: implausible order %+v", l.Rate, l.Visible)
		}
	}
	for _, p := range []string{bench.ProcNATS, bench.ProcWriter, bench.ProcProjector, bench.ProcBench} {
		if rep.CPUHalf[p] <= 0 {
			t.Errorf("no CPU figure for %s: %v", p, rep.CPUHalf)
		}
		// At the maximum only if some publisher step was bounded (the
		// collector's figure comes from its own search).
		if rep.CPUPerMillion[bench.ProcWriter] > 0 && rep.CPUPerMillion[p] <= 0 {
			t.Errorf("no CPU figure at the maximum for %s: %v", p, rep.CPUPerMillion)
		}
	}
	if w := rep.Work; len(w.MsgsPerEvent) > 0 && (w.MsgsPerEvent["TOUCHPOINTS"] != 1 || w.InsertsPerSec <= 0) {
		t.Errorf("work per event: %+v", w)
	}
	s := rep.Soak
	if s == nil {
		t.Fatal("no soak result")
	}
	if s.Published == 0 || s.Lost != 0 || s.Duplicated != 0 || s.Rows != s.Published || s.StreamMsgs != s.Published {
		t.Errorf("soak: published %d, rows %d, unique %d, stream %d, lost %d, duplicated %d (drain: %s)",
			s.Published, s.Rows, s.Uniq, s.StreamMsgs, s.Lost, s.Duplicated, s.DrainErr)
	}
	for _, p := range []string{bench.ProcNATS, bench.ProcWriter, bench.ProcProjector, bench.ProcCollector} {
		if s.RSSStart[p] <= 0 || s.RSSEnd[p] <= 0 {
			t.Errorf("soak: no RSS for %s: %v -> %v", p, s.RSSStart, s.RSSEnd)
		}
	}
	if s.EventParts == 0 {
		t.Error("soak: no parts counted")
	}
	doc := filepath.Join(t.TempDir(), "perf.md")
	chart, err := rep.AppendTo(doc)
	if err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(doc)
	svg, _ := os.ReadFile(chart)
	if !strings.Contains(string(md), "(test mode)") || !strings.Contains(string(svg), "<polyline") {
		t.Errorf("document or chart incomplete:\n%s", md)
	}
}
