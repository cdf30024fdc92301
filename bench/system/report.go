package bench

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// Commit returns `git rev-parse --short HEAD` in dir, or "unknown".
func Commit(dir string) string {
	cmd := exec.Command("git", "rev-parse", "--short", "HEAD")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "unknown"
	}
	s := strings.TrimSpace(string(out))
	// Uncommitted changes make the figures those of a tree no commit has.
	st := exec.Command("git", "status", "--porcelain", "--untracked-files=no")
	st.Dir = dir
	if o, err := st.Output(); err == nil && len(bytes.TrimSpace(o)) > 0 {
		s += "+dirty"
	}
	return s
}

// procOrder is the order of processes in the tables.
var procOrder = []string{ProcNATS, ProcClickHouse, ProcWriter, ProcProjector, ProcCollector, ProcBench}

func sortedProcs(m map[string]float64) []string {
	var out []string
	for _, p := range procOrder {
		if _, ok := m[p]; ok {
			out = append(out, p)
		}
	}
	return out
}

func rateStr(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%s/s", thousands(int64(math.Round(v))))
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func ratio(a, b float64) string {
	if b <= 0 || math.IsNaN(a) || math.IsNaN(b) {
		return "–"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

func distRow(name string, d Dist) string {
	if d.N == 0 {
		return fmt.Sprintf("| %s | – | – | – | 0 |\n", name)
	}
	return fmt.Sprintf("| %s | %s | %s | %s | %d |\n", name, ms(d.P50), ms(d.P99), ms(d.Max), d.N)
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// WriteMarkdown renders the report as a dated markdown section; chartRef
// is the chart's path relative to the markdown file ("" for none).
func (r *Report) WriteMarkdown(w io.Writer, chartRef string) error {
	var b strings.Builder
	pub, col := r.Sustained[ViaPublisher], r.Sustained[ViaCollector]
	fmt.Fprintf(&b, "## System benchmark, %s (%s mode)\n\n", r.Started.Format("2006-01-02 15:04 MST"), r.Mode)
	fmt.Fprintf(&b, "Commit `%s`, %d cores, ClickHouse %s, run took %s. Services, NATS and ClickHouse each in their own process; the load from the simulator's generator.\n\n",
		r.Commit, r.Cores, r.CHVersion, r.Duration.Round(time.Second))
	if r.OtherLoad >= 0.1 {
		fmt.Fprintf(&b, "**Other processes used %.0f%% of the machine's CPU time during this run**: the absolute figures are depressed and noisy, the ratios less so, and the CPU-bound verdict below does not hold.\n\n", 100*r.OtherLoad)
	}

	if pub != nil || col != nil {
		r.writeHeadline(&b, pub, col)
	}
	if len(r.Ceilings) > 0 {
		r.writeCeiling(&b)
	}
	if pub != nil || col != nil {
		r.writeSustained(&b, pub, col)
	}
	r.writeLatency(&b, pub)
	if len(r.CPUPerMillion) > 0 || len(r.CPUHalf) > 0 {
		r.writeCPU(&b)
	}
	if len(r.Work.MsgsPerEvent) > 0 {
		r.writeWork(&b)
	}

	if txt := r.Bottleneck(); txt != "" {
		b.WriteString("### Bottleneck (from the figures above)\n\n")
		b.WriteString(txt)
		b.WriteString("\n\n")
	}

	if r.Soak != nil {
		r.writeSoak(&b)
	}
	if chartRef != "" {
		fmt.Fprintf(&b, "![Throughput and p99 latency over the soak](%s)\n\n", chartRef)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeHeadline writes the ratios of the sustained figures to the
// ceilings; pub or col may be nil, not both.
func (r *Report) writeHeadline(b *strings.Builder, pub, col *Sustained) {
	c := r.Ceiling
	b.WriteString("### Headline: ours ÷ ceiling (measured in this run)\n\n")
	b.WriteString("| ratio | value |\n|---|---|\n")
	if pub != nil {
		fmt.Fprintf(b, "| sustained via pkg/publish ÷ raw JetStream publish | %s |\n", ratio(pub.Max, c.Publish))
		fmt.Fprintf(b, "| sustained via pkg/publish ÷ raw pull consume | %s |\n", ratio(pub.Max, c.Pull))
		fmt.Fprintf(b, "| sustained via pkg/publish ÷ raw ClickHouse insert | %s |\n", ratio(pub.Max, c.Insert))
		fmt.Fprintf(b, "| sustained via pkg/publish ÷ slowest raw stage | %s |\n", ratio(pub.Max, min(c.Publish, c.Pull, c.Ordered, c.Insert)))
	}
	if col != nil {
		fmt.Fprintf(b, "| sustained via collector ÷ raw JetStream publish | %s |\n", ratio(col.Max, c.Publish))
		if pub != nil {
			fmt.Fprintf(b, "| sustained via collector ÷ via pkg/publish | %s |\n", ratio(col.Max, pub.Max))
		}
	}
	b.WriteString("\n")
}

// writeLatency writes a table per latency rate; pub (nil when not
// measured) tells which rates were above the sustained maximum.
func (r *Report) writeLatency(b *strings.Builder, pub *Sustained) {
	for _, l := range r.Latency {
		fmt.Fprintf(b, "### Latency at %s (%s; achieved %s; median of %d windows)\n\n", rateStr(l.Rate), l.Label, rateStr(l.Achieved), l.Windows)
		if pub != nil && l.Rate > pub.Max {
			b.WriteString("This rate is above the sustained maximum: the backlogs grow during the windows, so these latencies grow with the window length and are not steady-state figures.\n\n")
		}
		b.WriteString("| publish → | p50 | p99 | max | samples |\n|---|---|---|---|---|\n")
		b.WriteString(distRow("row visible in ClickHouse", l.Visible))
		b.WriteString(distRow("state written (key-value)", l.State))
		b.WriteString(distRow("state visible through the API (customer_state)", l.API))
		b.WriteString(distRow("derived event published", l.Derive))
		b.WriteString("\n")
	}
}

// writeCPU writes the CPU seconds per million events of each process, at
// the maximum and at half of it.
func (r *Report) writeCPU(b *strings.Builder) {
	b.WriteString("### Where the time goes: CPU seconds per million events\n\n")
	b.WriteString("Read from /proc/<pid>/stat of each process. *At max*: the window each run held bounded (the sustained rate), via pkg/publish (the collector's via the collector), median of the runs, nothing else running. *At half max*: the latency windows, with the latency observers (two ordered consumers on NATS, a row-count poll every 20 ms) running. `bench` is the load generator and observers.\n\n")
	b.WriteString("| process | at max | at half max |\n|---|---|---|\n")
	var total, half float64
	procs := map[string]float64{}
	for p, v := range r.CPUPerMillion {
		procs[p] = v
	}
	for p, v := range r.CPUHalf {
		if _, ok := procs[p]; !ok {
			procs[p] = v
		}
	}
	cell := func(m map[string]float64, p string) string {
		v, ok := m[p]
		if !ok || math.IsNaN(v) {
			return "–"
		}
		return fmt.Sprintf("%.1f", v)
	}
	for _, p := range sortedProcs(procs) {
		fmt.Fprintf(b, "| %s | %s | %s |\n", p, cell(r.CPUPerMillion, p), cell(r.CPUHalf, p))
		if p != ProcBench && p != ProcCollector {
			total += r.CPUPerMillion[p]
			half += r.CPUHalf[p]
		}
	}
	fmt.Fprintf(b, "| **system without collector and load** | **%.1f** (%s events/s per core) | %.1f (%s events/s per core) |\n\n", total, perCore(total), half, perCore(half))
}

// writeWork writes what one event costs in messages and queries.
func (r *Report) writeWork(b *strings.Builder) {
	w := r.Work
	var names []string
	for name := range w.MsgsPerEvent {
		names = append(names, name)
	}
	sort.Strings(names)
	var parts []string
	var sum float64
	for _, name := range names {
		parts = append(parts, fmt.Sprintf("%s %.2f", name, w.MsgsPerEvent[name]))
		sum += w.MsgsPerEvent[name]
	}
	fmt.Fprintf(b, "What one event costs at the sustained maximum via pkg/publish: NATS stores **%.2f messages** per touchpoint (%s); ClickHouse takes **%.0f insert queries a second**, %.0f rows each on average (%.1f touchpoints per insert query), merges %.1f rows per touchpoint in the background and answers %.0f select queries a second (the bench's backlog polls among them).\n\n",
		sum, strings.Join(parts, ", "), w.InsertsPerSec, w.RowsPerInsert, w.EventsPerInsert, w.MergedPerEvent, w.SelectsPerSec)
}

// writeSoak writes the soak's counts, backlog, parts, latency and memory.
func (r *Report) writeSoak(b *strings.Builder) {
	s := r.Soak
	fmt.Fprintf(b, "### Soak: %s at %s (achieved %s)\n\n", s.Duration, rateStr(s.Rate), rateStr(s.Achieved))
	fmt.Fprintf(b, "- Stored according to pkg/publish (acked): %s; rows: %s; unique (source, id) in rows: %s; stream messages: %s\n",
		thousands(int64(s.Published)), thousands(int64(s.Rows)), thousands(int64(s.Uniq)), thousands(int64(s.StreamMsgs)))
	fmt.Fprintf(b, "- **Lost: %d, duplicated: %d** (acked by the stream but not a row, and rows beyond one per event); pkg/publish reported %d as not stored and %d acked only on a retry",
		s.Lost, s.Duplicated, s.NotStored, s.Retried)
	if s.DrainErr != "" {
		fmt.Fprintf(b, " (drain: %s)", s.DrainErr)
	}
	b.WriteString("\n")
	fmt.Fprintf(b, "- Backlog bounded: %v (max writer %s, projector %s; slope writer %.0f/s, projector %.0f/s)\n",
		s.Bounded, thousands(s.MaxWriter), thousands(s.MaxProj), s.WriterSlope, s.ProjSlope)
	fmt.Fprintf(b, "- ClickHouse active parts at the end: %d (events table: %d)\n", s.Parts, s.EventParts)
	fmt.Fprintf(b, "- Latency over the soak: visible p50 %s / p99 %s / max %s; state (key-value) p99 %s; state through the API p99 %s; derived p99 %s\n\n",
		ms(s.Visible.P50), ms(s.Visible.P99), ms(s.Visible.Max), ms(s.State.P99), ms(s.API.P99), ms(s.Derive.P99))
	if len(s.CPUPerMillion) > 0 {
		var cells []string
		for _, p := range procOrder {
			if v, ok := s.CPUPerMillion[p]; ok {
				cells = append(cells, fmt.Sprintf("%s %.1f", p, v))
			}
		}
		fmt.Fprintf(b, "- CPU seconds per million events over the soak and its drain: %s\n\n", strings.Join(cells, ", "))
	}
	writeRSS(b, s)
}

// writeCeiling writes the raw ceilings.
func (r *Report) writeCeiling(b *strings.Builder) {
	c := r.Ceiling
	fmt.Fprintf(b, "### Ceiling (median of %d runs, %s events each)\n\n", len(r.Ceilings), thousands(int64(r.ceilingEvents())))
	b.WriteString("| raw | events/s | runs |\n|---|---|---|\n")
	runs := func(f func(Ceiling) float64) string {
		var s []string
		for _, x := range r.Ceilings {
			s = append(s, thousands(int64(f(x))))
		}
		return strings.Join(s, ", ")
	}
	fmt.Fprintf(b, "| JetStream async publish (4096 in flight, every ack awaited) | %s | %s |\n", rateStr(c.Publish), runs(func(c Ceiling) float64 { return c.Publish }))
	fmt.Fprintf(b, "| pull consume (durable, explicit ack each) | %s | %s |\n", rateStr(c.Pull), runs(func(c Ceiling) float64 { return c.Pull }))
	fmt.Fprintf(b, "| ordered consume | %s | %s |\n", rateStr(c.Ordered), runs(func(c Ceiling) float64 { return c.Ordered }))
	fmt.Fprintf(b, "| clickhouse-go columnar batch insert (5000 rows) | %s | %s |\n\n", rateStr(c.Insert), runs(func(c Ceiling) float64 { return c.Insert }))

}

// writeSustained writes the sustained-throughput table, how long each
// figure was held, and every window of the search.
func (r *Report) writeSustained(b *strings.Builder, pub, col *Sustained) {
	b.WriteString("### Sustained throughput (writer and projector backlogs bounded)\n\n")
	b.WriteString("| path | sustained max (median) | runs | each held for | candidate (coarse steps) |\n|---|---|---|---|---|\n")
	var notes []string
	short := false
	for _, s := range []*Sustained{pub, col} {
		if s == nil {
			continue
		}
		var rs []string
		for _, x := range s.Runs {
			rs = append(rs, thousands(int64(x.Max)))
		}
		name := "pkg/publish"
		if s.Path == ViaCollector {
			name = "collector (HTTP batches of 100)"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s (%s steps) |\n", name, rateStr(s.Max), strings.Join(rs, ", "), s.Window, rateStr(s.Candidate), s.CoarseWindow)
		if s.Note != "" {
			notes = append(notes, fmt.Sprintf("via %s, %s", s.Path, s.Note))
		}
		if s.Window < time.Minute {
			short = true
		}
	}
	b.WriteString("\nA run's figure is the first rate, from the candidate (later runs: from the first run's figure) down by 12 % a window, whose writer and projector backlogs stayed bounded for the whole window (drained before it; a window whose backlog trend and total growth both failed already a third in was stopped early, as not bounded); 0 when none was. ")
	if short {
		b.WriteString("**The windows here are shorter than the 60 s the issue asks for**: a quick look, not the sustained figure. ")
	}
	if len(notes) > 0 {
		b.WriteString("Runs made: " + strings.Join(notes, "; ") + ".")
	}
	b.WriteString("\n\n<details><summary>Search steps</summary>\n\n| path | phase | target | window | achieved | writer backlog | projector backlog | bounded | why not |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range []*Sustained{pub, col} {
		if s == nil {
			continue
		}
		steps := slices.Clone(s.Coarse)
		for _, run := range s.Runs {
			steps = append(steps, run.Steps...)
		}
		for _, st := range steps {
			win := st.Window.String()
			if st.Aborted {
				win = st.Elapsed.Round(time.Second).String() + " of " + win
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %v | %s |\n", s.Path, st.Phase, thousands(int64(st.Target)), win, thousands(int64(st.Achieved)),
				thousands(st.Writer), thousands(st.Projector), st.Bounded, st.Why)
		}
	}
	b.WriteString("\n</details>\n\n")
}

func perCore(cpuPerMillion float64) string {
	if cpuPerMillion <= 0 {
		return "–"
	}
	return thousands(int64(1e6 / cpuPerMillion))
}

// writeRSS writes the soak's RSS table: start (after the warm-up), the
// middle, two thirds in and the end, and whether each stayed flat.
func writeRSS(b *strings.Builder, s *SoakResult) {
	var flat, level, grow []string
	rows := ""
	for _, p := range procOrder {
		if _, ok := s.RSSEnd[p]; !ok {
			continue
		}
		start, end := s.RSSStart[p], s.RSSEnd[p]
		mid, third := rssAt(s.RSS, p, s.Duration/2), rssAt(s.RSS, p, 2*s.Duration/3)
		v := rssVerdict(start, third, end)
		switch v {
		case verdictFlat:
			flat = append(flat, p)
		case verdictLevelled:
			level = append(level, p)
		default:
			grow = append(grow, fmt.Sprintf("%s (+%s in the last third)", p, mib(end-third)))
		}
		rows += fmt.Sprintf("| %s | %s | %s | %s | %s | %s |\n", p, mib(start), mib(mid), mib(third), mib(end), v)
	}
	var parts []string
	if len(flat) > 0 {
		parts = append(parts, "**flat**: "+strings.Join(flat, ", "))
	}
	if len(level) > 0 {
		parts = append(parts, "**grew, then levelled off** (flat in the last third): "+strings.Join(level, ", "))
	}
	if len(grow) > 0 {
		parts = append(parts, "**still growing at the end**: "+strings.Join(grow, ", "))
	}
	fmt.Fprintf(b, "RSS over the soak (start: after the warm-up; flat: the end within 10 %% or 16 MiB of the start; levelled off: the last third within 5 %% or 16 MiB): %s.\n\n", strings.Join(parts, "; "))
	b.WriteString("| process | RSS start | middle | two thirds | end | |\n|---|---|---|---|---|---|\n")
	b.WriteString(rows)
	b.WriteString("\n")
}

const (
	verdictFlat     = "flat"
	verdictLevelled = "levelled off"
	verdictGrowing  = "growing"
)

// rssVerdict judges a process's RSS from its start, two-thirds and end
// readings: flat when the end is within 10 % (or 16 MiB) of the start,
// levelled off when only the last third is, growing otherwise. Memory
// that still grows in the last third of a 10-minute soak is either a leak
// or a cache larger than the soak shows; either way it is not flat.
func rssVerdict(start, third, end int64) string {
	const slack = 16 << 20
	switch {
	case end-start <= max(start/10, slack):
		return verdictFlat
	case end-third <= max(third/20, slack):
		return verdictLevelled
	}
	return verdictGrowing
}

// rssAt is the reading of p nearest to at (0 when none).
func rssAt(rs []RSSReading, p string, at time.Duration) int64 {
	var best int64
	bestD := time.Duration(math.MaxInt64)
	for _, r := range rs {
		d := r.At - at
		if d < 0 {
			d = -d
		}
		if v, ok := r.RSS[p]; ok && d < bestD {
			best, bestD = v, d
		}
	}
	return best
}

// limitOf classifies why a step was not bounded.
func limitOf(why string) string {
	switch {
	case strings.HasPrefix(why, "writer"):
		return "the writer's backlog grew"
	case strings.HasPrefix(why, "projector"):
		return "the projector's backlog grew"
	case strings.HasPrefix(why, "load reached"), strings.HasPrefix(why, "load failed"):
		return "the senders could not publish faster (publish acks or collector answers slowed them)"
	}
	return why
}

// Bottleneck says, from the measurements only, what limited the sustained
// rate and where the CPU went.
func (r *Report) Bottleneck() string {
	var parts []string
	for _, s := range []*Sustained{r.Sustained[ViaPublisher], r.Sustained[ViaCollector]} {
		if s == nil {
			continue
		}
		count := map[string]int{}
		var order []string
		n := 0
		for _, run := range s.Runs {
			// The lowest unbounded rate above the run's maximum (its own
			// windows and the coarse steps) shows the limit hit first.
			var first *Step
			steps := append(slices.Clone(run.Steps), s.Coarse...)
			for i := range steps {
				st := &steps[i]
				if !st.Bounded && st.Target > run.Max && (first == nil || st.Target < first.Target) {
					first = st
				}
			}
			if first != nil {
				l := limitOf(first.Why)
				if count[l] == 0 {
					order = append(order, l)
				}
				count[l]++
				n++
			}
		}
		if n == 0 {
			continue
		}
		var ls []string
		for _, l := range order {
			ls = append(ls, fmt.Sprintf("%s (%d of %d runs)", l, count[l], n))
		}
		parts = append(parts, fmt.Sprintf("Above the sustained maximum via %s, %s.", s.Path, strings.Join(ls, "; ")))
	}
	cpu, basis := r.CPUPerMillion, "at the sustained maximum"
	if len(cpu) == 0 || cpu[ProcWriter] == 0 {
		cpu, basis = r.CPUHalf, "at the latency rate (no step was bounded)"
	}
	if len(cpu) > 0 {
		var total, all float64
		var top string
		for p, v := range cpu {
			if p == ProcCollector {
				continue
			}
			all += v
			if p == ProcBench {
				continue
			}
			total += v
			if top == "" || v > cpu[top] {
				top = p
			}
		}
		if total > 0 {
			var shares []string
			for _, p := range sortedProcs(cpu) {
				if p == ProcCollector || p == ProcBench {
					continue
				}
				shares = append(shares, fmt.Sprintf("%s %.0f%%", p, 100*cpu[p]/total))
			}
			parts = append(parts, fmt.Sprintf("Per million events %s the system spends %.1f CPU-seconds (%s); the largest consumer is %s.", basis, total, strings.Join(shares, ", "), top))
			capacity := float64(r.Cores) * 1e6 / all
			if pub := r.Sustained[ViaPublisher]; pub != nil && pub.Max > 0 {
				parts = append(parts, fmt.Sprintf("With the load generator's own %.1f, %d cores fully busy would carry at most %s; the sustained maximum via pkg/publish is %.0f%% of that, so the run is %s.",
					cpu[ProcBench], r.Cores, rateStr(capacity), 100*pub.Max/capacity, cpuVerdict(pub.Max/capacity)))
			}
		}
	}
	return strings.Join(parts, " ")
}

func cpuVerdict(share float64) string {
	switch {
	case share >= 0.75:
		return "CPU-bound: a faster path needs fewer CPU-seconds per event, not more concurrency"
	case share >= 0.5:
		return "mostly CPU-bound, with some time lost to waiting (batching, acks)"
	default:
		return "not CPU-bound: the limit is waiting (round trips, batch ages, back-pressure), not work"
	}
}

func (r *Report) ceilingEvents() int { return r.ceilingN }

// Document is the markdown file that collects the dated sections.
const docHeader = `# System performance

Results of ` + "`make bench`" + ` (and ` + "`make bench-short`" + `), newest last. Each section
is one run of bench/system: how it measures is described in
docs/performance-system.md's method section and in the package
documentation.
`

// AppendTo appends the report as a new section to the markdown file at
// path (created with a header if missing) and writes the chart next to it
// in <dir>/performance-system/<stamp>.svg.
func (r *Report) AppendTo(path string) (chartPath string, err error) {
	dir := filepath.Dir(path)
	stamp := r.Started.Format("20060102T150405Z")
	chartRel := filepath.Join("performance-system", "soak-"+stamp+".svg")
	chartPath = filepath.Join(dir, chartRel)
	if r.Soak != nil {
		if err := os.MkdirAll(filepath.Dir(chartPath), 0o755); err != nil {
			return "", err
		}
		var buf bytes.Buffer
		if err := r.Chart.WriteSVG(&buf); err != nil {
			return "", err
		}
		if err := os.WriteFile(chartPath, buf.Bytes(), 0o644); err != nil {
			return "", err
		}
	} else {
		chartRel, chartPath = "", ""
	}
	existing, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return "", err
	}
	var b bytes.Buffer
	if len(existing) == 0 {
		b.WriteString(docHeader)
	} else {
		b.Write(existing)
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\n\n")) {
		b.WriteString("\n")
	}
	if err := r.WriteMarkdown(&b, filepath.ToSlash(chartRel)); err != nil {
		return "", err
	}
	return chartPath, os.WriteFile(path, b.Bytes(), 0o644)
}
