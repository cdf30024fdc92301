package writer_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/klantreis/journey/internal/badids"
)

// On the NATS path nothing checked the identifiers before the writer: an
// id that would not round-trip, or a subject that names another kind or
// customer than the event, is dead-lettered with its reason and never
// becomes a row.
func TestBadIdentifiersAndSubjectsAreDeadLettered(t *testing.T) {
	e := sharedEnv(t)
	e.inProc(e.config(nil))
	cases := badids.Cases("w-", time.Now().Add(-time.Hour))
	for _, c := range cases {
		if _, err := e.js.PublishMsg(context.Background(), c.Msg); err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
	}
	waitFor(t, time.Minute, "the writer to take every case", func() bool { return e.drained("writer") })
	rows, err := e.db.Conn.Query(context.Background(), "SELECT error_class, error_text FROM events_dead ORDER BY stream_seq")
	if err != nil {
		t.Fatal(err)
	}
	var dead []string
	for rows.Next() {
		var class, text string
		if err := rows.Scan(&class, &text); err != nil {
			t.Fatal(err)
		}
		dead = append(dead, class+": "+text)
	}
	rows.Close()
	want, valid := 0, 0
	for _, c := range cases {
		if c.Reason == "" {
			valid++
			continue
		}
		found := false
		for _, d := range dead {
			if strings.Contains(d, c.Reason) {
				found = true
				t.Logf("%s -> %s", c.Name, d)
			}
		}
		if !found {
			t.Errorf("%s: no dead letter says %q (dead letters: %q)", c.Name, c.Reason, dead)
		}
		want++
	}
	if len(dead) != want {
		t.Fatalf("%d dead letters, want %d", len(dead), want)
	}
	if n := e.count("SELECT count() FROM events"); n != uint64(valid) {
		t.Fatalf("%d rows, want only the %d valid events", n, valid)
	}
	if n := e.count("SELECT count() FROM events WHERE customer_id = 'bad-nl x'"); n != 1 {
		t.Fatalf("the id with a space: %d rows", n)
	}
}
