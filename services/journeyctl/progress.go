package journeyctl

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Progress reports long work. On a terminal it is a bar with done/total,
// rate and ETA; elsewhere a plain line every interval (and one at the end),
// so logs of a cron job or CI show how far a replay got.
type Progress interface {
	Add(n int)
	// Finish prints the final state.
	Finish()
}

// NewProgress returns a bar when tty, else plain lines to w every interval.
// unit names what is counted ("events").
func NewProgress(w io.Writer, tty bool, every time.Duration, desc, unit string, total int64) Progress {
	if tty {
		return &barProgress{bar: progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString(unit),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetWidth(30),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)}
	}
	return &lineProgress{w: w, every: every, desc: desc, unit: unit, total: total, start: time.Now(), last: time.Now()}
}

type barProgress struct{ bar *progressbar.ProgressBar }

func (b *barProgress) Add(n int) { _ = b.bar.Add(n) }
func (b *barProgress) Finish()   { _ = b.bar.Finish() }

type lineProgress struct {
	mu          sync.Mutex
	w           io.Writer
	every       time.Duration
	desc, unit  string
	total, done int64
	start, last time.Time
}

func (l *lineProgress) Add(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done += int64(n)
	if now := time.Now(); now.Sub(l.last) >= l.every {
		l.last = now
		l.line(now)
	}
}

func (l *lineProgress) Finish() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.line(time.Now())
}

// line prints "desc: done/total (pct%) rate unit/s, eta D".
func (l *lineProgress) line(now time.Time) {
	el := now.Sub(l.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(l.done) / el
	}
	eta := "unknown"
	if rate > 0 && l.total >= l.done {
		eta = time.Duration(float64(l.total-l.done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	pct := 100.0
	if l.total > 0 {
		pct = 100 * float64(l.done) / float64(l.total)
	}
	fmt.Fprintf(l.w, "%s: %d/%d (%.0f%%) %.0f %s/s, eta %s\n", l.desc, l.done, l.total, pct, rate, l.unit, eta)
}
