package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/klantreis/journey/internal/procstat"
	"github.com/klantreis/journey/pkg/ops"
)

// Profile writes a heap profile of this process to dir every interval
// (<name>-heap-<seconds>.pprof) and logs the Go runtime's memory figures
// at warning level (the children's log level), until ctx ends. It is for
// looking into a child's memory (journey-bench's JOURNEY_BENCH_PROFILE_DIR):
// RSS far above the live heap means GC headroom or unreturned pages,
// a live heap that keeps growing means something holds on to memory.
// Failures to write are logged, not returned: profiling must not stop the
// service it looks at.
func Profile(ctx context.Context, dir, name string, every time.Duration, log *slog.Logger) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Warn("profile dir", "err", err)
		return
	}
	start := time.Now()
	ops.Every(ctx, every, func(context.Context) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		rss := int64(0)
		if u, err := procstat.Read(os.Getpid()); err == nil {
			rss = u.RSS
		}
		sec := int(time.Since(start).Seconds())
		log.Warn("memstats", "t", sec, "rss_mib", rss>>20, "heap_alloc_mib", ms.HeapAlloc>>20, "heap_inuse_mib", ms.HeapInuse>>20,
			"heap_idle_mib", ms.HeapIdle>>20, "heap_released_mib", ms.HeapReleased>>20, "sys_mib", ms.Sys>>20,
			"next_gc_mib", ms.NextGC>>20, "num_gc", ms.NumGC, "objects", ms.HeapObjects)
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-heap-%04d.pprof", name, sec)))
		if err != nil {
			log.Warn("heap profile", "err", err)
			return
		}
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			log.Warn("heap profile", "err", err)
		}
		f.Close()
	})
}
