package writer_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/klantreis/journey/pkg/minimise"
	"github.com/klantreis/journey/pkg/touchpoint"
)

// With JOURNEY_WRITER_MINIMISE_SURVEY_COMMENT=drop and _COMPLAINT_TEXT=mask,
// events published straight to NATS (pkg/publish, no collector) are stored
// without the comment and with the complaint text masked; everything else,
// and the identity, as sent: the original sent again is a duplicate, not a
// conflict, although its content hash as sent differs from the stored data.
func TestWriterMinimisesFreeText(t *testing.T) {
	e := sharedEnv(t)
	cfg := e.config(nil)
	cfg.Writer.Minimise = minimise.Config{ComplaintText: minimise.Mask, SurveyComment: minimise.Drop}
	e.inProc(cfg)
	at := time.Now().Add(-time.Hour)
	survey, err := touchpoint.New("test", "s-min", "cust-min", at, touchpoint.Survey{SurveyID: "nps", Score: 7, Comment: "I am Jan, 0612345678"})
	if err != nil {
		t.Fatal(err)
	}
	complaint, err := touchpoint.New("test", "k-min", "cust-min", at, touchpoint.Complaint{ComplaintID: "k", Status: "opened", Category: "billing", Text: "my IBAN is NL00BANK0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	again := factMsg(t, &survey)
	delete(again.Header, "Nats-Msg-Id") // past the stream's dedup: the writer judges it
	if got := e.publish([]*nats.Msg{factMsg(t, &survey), factMsg(t, &complaint), again}); got != 3 {
		t.Fatalf("stored %d of 3", got)
	}
	waitFor(t, time.Minute, "the writer to take all three", func() bool { return e.drained("writer") })
	if n := e.count("SELECT count() FROM events WHERE customer_id = 'cust-min'"); n != 2 {
		t.Fatalf("%d rows, want 2 (the resend is a duplicate)", n)
	}
	if n := e.count("SELECT count() FROM events_dead"); n != 0 {
		t.Fatalf("%d dead letters: the resend of a minimised event was judged a conflict", n)
	}
	var sData, kData string
	ctx := context.Background()
	if err := e.db.Conn.QueryRow(ctx, "SELECT data FROM events WHERE id = 's-min'").Scan(&sData); err != nil {
		t.Fatal(err)
	}
	if err := e.db.Conn.QueryRow(ctx, "SELECT data FROM events WHERE id = 'k-min'").Scan(&kData); err != nil {
		t.Fatal(err)
	}
	t.Logf("stored survey %s, complaint %s", sData, kData)
	if strings.Contains(sData, "0612345678") || strings.Contains(sData, "comment") || !strings.Contains(sData, `"score":7`) {
		t.Fatalf("survey stored as %s, want the comment dropped and the score kept", sData)
	}
	if strings.Contains(kData, "IBAN") || !strings.Contains(kData, `"text":"[masked]"`) || !strings.Contains(kData, `"category":"billing"`) {
		t.Fatalf("complaint stored as %s, want the text masked and the rest kept", kData)
	}
}
