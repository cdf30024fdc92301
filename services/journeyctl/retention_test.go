package journeyctl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/envdoc"
	"github.com/klantreis/journey/pkg/touchpoint"
	"github.com/klantreis/journey/pkg/warehouse"
	"github.com/klantreis/journey/services/journeyctl"
)

func TestConfigDocumented(t *testing.T) {
	_, doc, err := envdoc.FindDoc()
	if err != nil {
		t.Fatal(err)
	}
	missing, err := envdoc.Missing(&journeyctl.Config{}, doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		vars, _ := envdoc.Vars(&journeyctl.Config{})
		t.Fatalf("docs/configuration.md lacks %v; journeyctl's table:\n%s", missing, envdoc.Table(vars))
	}
}

func row(t *testing.T, seq uint64, id string, p touchpoint.Typed, at time.Time) warehouse.EventRow {
	t.Helper()
	e, err := touchpoint.New("test", id, "cust-ret", at, p)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := touchpoint.Validate(&e, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return warehouse.NewEventRow(seq, &e, &pl, time.Now())
}

// `journeyctl retention` with JOURNEY_RETENTION_VISIT set removes the
// visits older than that, keeps the rest, reports what it did and audits
// it; without any retention set it refuses to run (exit 2).
func TestRetentionCommand(t *testing.T) {
	t.Parallel() // its own NATS server and database
	e := newEnv(t)
	old := time.Now().Add(-90 * 24 * time.Hour)
	visit := touchpoint.Visit{Common: touchpoint.Common{Channel: "web"}}
	order := touchpoint.Order{OrderID: "o", Status: "placed", Amount: touchpoint.Amount{Cents: 1}, Currency: "EUR"}
	if err := e.db.InsertEvents(context.Background(), []warehouse.EventRow{
		row(t, 1, "v-old", visit, old), row(t, 2, "o-old", order, old), row(t, 3, "v-new", visit, time.Now().Add(-time.Hour)),
	}); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := e.run("retention"); code != journeyctl.ExitUsage {
		t.Fatalf("without retention settings: exit %d, want %d", code, journeyctl.ExitUsage)
	}
	cfg := e.config()
	cfg.Retention.Visit = 30 * 24 * time.Hour
	var out, errOut bytes.Buffer
	env := &journeyctl.Env{Config: cfg, Out: &out, Err: &errOut, Log: slog.New(slog.NewTextHandler(&errOut, nil))}
	code := journeyctl.Run(context.Background(), []string{"--json", "--actor", "test", "retention"}, env)
	t.Logf("journeyctl retention -> %d\n%s%s", code, out.String(), errOut.String())
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var res journeyctl.RetentionResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if e.count("SELECT count() FROM events WHERE id = 'v-old'") != 0 || e.count("SELECT count() FROM events WHERE id IN ('o-old', 'v-new')") != 2 {
		t.Fatal("the old visit is not gone, or another row went with it")
	}
	if !e.db.Features.TTLWhere && res.Deleted["events:visit"] != 1 {
		t.Fatalf("reported %+v, want the old visit deleted", res)
	}
	if n := e.count("SELECT count() FROM ops_audit WHERE action = 'retention' AND outcome = 'ok'"); n != 1 {
		t.Fatalf("%d audit rows", n)
	}
}
