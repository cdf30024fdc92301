package dsar_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/klantreis/journey/pkg/dsar"
)

func records(n int) dsar.Section {
	return dsar.Section{Name: "touchpoints", Fill: func(ctx context.Context, emit func(any) error) error {
		for i := 0; i < n; i++ {
			if err := emit(map[string]any{"i": i, "text": "<b>&"}); err != nil {
				return err
			}
		}
		return nil
	}}
}

func TestWriteIsOneCompleteDocument(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 3, 5000} {
		var buf bytes.Buffer
		at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		empty := dsar.Section{Name: "consent", Fill: func(context.Context, func(any) error) error { return nil }}
		counts, err := dsar.Write(context.Background(), &buf, "c/1", at, records(n), empty)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Format      string           `json:"format"`
			CustomerID  string           `json:"customer_id"`
			GeneratedAt time.Time        `json:"generated_at"`
			Touchpoints []map[string]any `json:"touchpoints"`
			Consent     []any            `json:"consent"`
			Counts      map[string]int   `json:"counts"`
			Complete    bool             `json:"complete"`
		}
		if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
			t.Fatalf("n=%d: not JSON: %v\n%s", n, err, buf.String())
		}
		if doc.Format != dsar.Format || doc.CustomerID != "c/1" || !doc.GeneratedAt.Equal(at) || !doc.Complete {
			t.Fatalf("n=%d: head %+v", n, doc)
		}
		if len(doc.Touchpoints) != n || doc.Consent == nil || len(doc.Consent) != 0 || doc.Counts["touchpoints"] != n || counts["touchpoints"] != n {
			t.Fatalf("n=%d: %d records, counts %v / %v", n, len(doc.Touchpoints), doc.Counts, counts)
		}
		for i, r := range doc.Touchpoints {
			if r["i"] != float64(i) || r["text"] != "<b>&" {
				t.Fatalf("record %d is %v", i, r)
			}
		}
	}
}

// A section that fails leaves a document without "complete": a reader
// can never take a cut-short export for a whole one.
func TestWriteCutShortIsNeverComplete(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	boom := errors.New("clickhouse went away")
	bad := dsar.Section{Name: "dead_letters", Fill: func(ctx context.Context, emit func(any) error) error {
		_ = emit(1)
		return boom
	}}
	// Past the buffer: the reader has part of a document, never a whole one.
	_, err := dsar.Write(context.Background(), &buf, "c", time.Now(), records(5000), bad)
	var de *dsar.Error
	if !errors.Is(err, boom) || !errors.As(err, &de) || de.Section != "dead_letters" || !de.Sent || !strings.Contains(err.Error(), "dead_letters") {
		t.Fatalf("error %v, want the section's, naming it, sent", err)
	}
	if buf.Len() == 0 || strings.Contains(buf.String(), `"complete"`) || json.Valid(buf.Bytes()) {
		t.Fatalf("a cut-short document looks whole (%d bytes)", buf.Len())
	}
	// Before the first flush nothing reaches the writer: the caller may
	// still answer with an error.
	buf.Reset()
	_, err = dsar.Write(context.Background(), &buf, "c", time.Now(), records(2), bad)
	if !errors.As(err, &de) || de.Sent || buf.Len() != 0 {
		t.Fatalf("early failure: %v, sent %v, %d bytes written", err, de.Sent, buf.Len())
	}
}

func TestWriteRefusesBadSections(t *testing.T) {
	t.Parallel()
	fill := func(context.Context, func(any) error) error { return nil }
	for name, secs := range map[string][]dsar.Section{
		"no name":      {{Fill: fill}},
		"no fill":      {{Name: "x"}},
		"twice":        {{Name: "x", Fill: fill}, {Name: "x", Fill: fill}},
		"document key": {{Name: "complete", Fill: fill}},
	} {
		if _, err := dsar.Write(context.Background(), &bytes.Buffer{}, "c", time.Now(), secs...); !errors.Is(err, dsar.ErrSection) {
			t.Errorf("%s: %v, want ErrSection", name, err)
		}
	}
}

// A reader that goes away stops the read: emit returns its error.
func TestWriteStopsWhenTheContextEnds(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	emitted := 0
	sec := dsar.Section{Name: "touchpoints", Fill: func(ctx context.Context, emit func(any) error) error {
		for {
			if err := emit(emitted); err != nil {
				return err
			}
			emitted++
			if emitted == 10 {
				cancel()
			}
		}
	}}
	if _, err := dsar.Write(ctx, &bytes.Buffer{}, "c", time.Now(), sec); !errors.Is(err, context.Canceled) {
		t.Fatalf("%v, want context.Canceled", err)
	}
	if emitted != 10 {
		t.Fatalf("%d records after the cancel", emitted)
	}
}
