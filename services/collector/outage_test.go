package collector_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/natsserver"
	"github.com/klantreis/journey/internal/natsserver/natsproc"
	"github.com/klantreis/journey/internal/natsserver/natstest"
	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/services/collector"
)

// send posts one structured event and returns the status and Retry-After;
// usable from goroutines (it does not fail the test itself).
func send(url, body string) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+tokenCRM)
	req.Header.Set("Content-Type", "application/cloudevents+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusServiceUnavailable && !strings.Contains(string(b), `"unavailable"`) {
		return resp.StatusCode, "", fmt.Errorf("503 without reason: %s", b)
	}
	return resp.StatusCode, resp.Header.Get("Retry-After"), nil
}

// TestNATSOutage stops NATS under load: the collector answers 503 with
// Retry-After while it is down, the same request succeeds once it is back,
// and no event that got a 202 is missing from the stream. It has its own
// server because it restarts it.
func TestNATSOutage(t *testing.T) {
	srv, err := natsserver.Start(natsserver.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown() })
	e := newEnvOn(t, srv.ClientURL(), nil)
	url := e.url + "/v1/events"

	// A well-behaved client: fresh events, each resent until it gets 202.
	// Well-behaved clients: fresh events, each resent until it gets 202;
	// the only refusal they may meet is a 503 with Retry-After.
	load := startResending(t, url, "crm/load", "load", 50*time.Millisecond, func(code int, ra string, err error) error {
		if err != nil {
			return err
		}
		if code != http.StatusServiceUnavailable || ra == "" {
			return fmt.Errorf("status %d, Retry-After %q during the outage", code, ra)
		}
		return nil
	})
	waitFor(t, "events accepted before the outage", func() bool { return load.count() >= 20 })

	srv.Shutdown()
	fixed := structuredOrder("crm/a", uid("fixed"), "c-fixed")
	waitFor(t, "503 while NATS is down", func() bool {
		code, ra, err := send(url, fixed)
		if err != nil {
			t.Fatal(err)
		}
		if code == http.StatusAccepted {
			t.Fatal("202 while NATS is down")
		}
		return code == http.StatusServiceUnavailable && ra != ""
	})
	if resp, err := http.Get(e.url + "/readyz"); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz while NATS is down: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	time.Sleep(300 * time.Millisecond) // let the load meet the outage

	srv, err = srv.Restart()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the same request accepted after NATS returns", func() bool {
		code, _, err := send(url, fixed)
		if err != nil {
			t.Fatal(err)
		}
		return code == http.StatusAccepted
	})
	before := load.count()
	waitFor(t, "load accepted after the restart", func() bool { return load.count() >= before+20 })
	accepted, saw503 := load.stop()

	counts := countByID(e.storedEvents(t))
	if saw503 == 0 {
		t.Fatal("the load never met the outage")
	}
	for _, id := range accepted {
		if n := counts["crm/load "+id]; n != 1 {
			t.Fatalf("event %s got 202 but is stored %d times", id, n)
		}
	}
	fixedN := 0
	for k, n := range counts {
		if strings.HasPrefix(k, "crm/a fixed-") {
			fixedN += n
		}
	}
	if fixedN != 1 {
		t.Fatalf("the fixed event is stored %d times", fixedN)
	}
	t.Logf("%d events accepted across the outage, %d answers were 503", len(accepted), saw503)
}

// resending is a few well-behaved clients: each sends fresh events
// (source src, id prefix) and resends each one, every pause, until it
// gets 202. check judges every refusal (a status other than 202, or a
// connection error): an error fails the test and stops that client. An
// event not accepted when the clients stop is not counted.
type resending struct {
	mu       sync.Mutex
	accepted []string
	refused  int
	done     chan struct{}
	wg       sync.WaitGroup
}

func startResending(t *testing.T, url, src, prefix string, pause time.Duration, check func(code int, retryAfter string, err error) error) *resending {
	r := &resending{done: make(chan struct{})}
	for w := 0; w < 4; w++ {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for {
				select {
				case <-r.done:
					return
				default:
				}
				id := uid(prefix)
				if !r.resend(t, url, structuredOrder(src, id, "c-"+id[len(id)-1:]), id, pause, check) {
					return
				}
			}
		}()
	}
	return r
}

// resend sends body until it gets 202; false when the clients stop or
// check failed the test.
func (r *resending) resend(t *testing.T, url, body, id string, pause time.Duration, check func(int, string, error) error) bool {
	for {
		code, ra, err := send(url, body)
		if err == nil && code == http.StatusAccepted {
			r.mu.Lock()
			r.accepted = append(r.accepted, id)
			r.mu.Unlock()
			return true
		}
		if err := check(code, ra, err); err != nil {
			t.Error(err)
			return false
		}
		r.mu.Lock()
		r.refused++
		r.mu.Unlock()
		select {
		case <-r.done:
			return false
		case <-time.After(pause):
		}
	}
}

func (r *resending) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.accepted)
}

// stop stops the clients and returns the ids accepted and the refusals met.
func (r *resending) stop() ([]string, int) {
	close(r.done)
	r.wg.Wait()
	return r.accepted, r.refused
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRunStartsBeforeNATS: Run starts and reports not ready while NATS is
// down, ensures the streams once it is up, and returns nil when cancelled.
func TestRunStartsBeforeNATS(t *testing.T) {
	natsPort, httpPort := natsproc.FreePort(t), natsproc.FreePort(t)
	cfg := collector.Config{
		NATS:      stream.Conn{URL: fmt.Sprintf("nats://127.0.0.1:%d", natsPort), ReconnectWait: 100 * time.Millisecond, RequestTimeout: time.Second},
		Stream:    stream.DefaultTopology(),
		Collector: testSettings(),
	}
	cfg.Collector.Addr = fmt.Sprintf("127.0.0.1:%d", httpPort)
	base := "http://" + cfg.Collector.Addr
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- collector.Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()

	status := func(path string) int {
		resp, err := http.Get(base + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor(t, "healthz", func() bool { return status("/healthz") == http.StatusOK })
	if code := status("/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz without NATS: %d", code)
	}
	event := structuredOrder("crm/a", uid("run"), "c")
	if code, _, err := send(base+"/v1/events", event); err != nil || code != http.StatusServiceUnavailable {
		t.Fatalf("event without NATS: %d %v", code, err)
	}

	srv, err := natsserver.Start(natsserver.Options{Port: natsPort, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	waitFor(t, "readyz once NATS is up", func() bool { return status("/readyz") == http.StatusOK })
	if code, _, err := send(base+"/v1/events", event); err != nil || code != http.StatusAccepted {
		t.Fatalf("event with NATS: %d %v", code, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// TestRunRefusesWithoutTokens: no token configured is a startup error.
func TestRunRefusesWithoutTokens(t *testing.T) {
	cfg := collector.Config{NATS: stream.Conn{URL: natstest.URL(t)}, Stream: stream.DefaultTopology(), Collector: collector.DefaultSettings()}
	cfg.Collector.Addr = "127.0.0.1:0"
	err := collector.Run(t.Context(), cfg, nil)
	if !errors.Is(err, collector.ErrNoTokens) {
		t.Fatalf("Run = %v, want ErrNoTokens", err)
	}
}

// TestRunFailsOnTakenAddress: a bind error ends Run at once, even while
// NATS is down and the topology loop is still retrying.
func TestRunFailsOnTakenAddress(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := collector.Config{
		NATS:      stream.Conn{URL: fmt.Sprintf("nats://127.0.0.1:%d", natsproc.FreePort(t)), ReconnectWait: 100 * time.Millisecond, RequestTimeout: time.Second},
		Stream:    stream.DefaultTopology(),
		Collector: testSettings(),
	}
	cfg.Collector.Addr = l.Addr().String()
	done := make(chan error, 1)
	go func() { done <- collector.Run(t.Context(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "address already in use") {
			t.Fatalf("Run = %v, want a bind error", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run hangs after a bind error")
	}
}
