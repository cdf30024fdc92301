// Package dsar writes the answer to a data subject access request (GDPR
// art. 15): one JSON document holding everything journey keeps on one
// customer, streamed record by record so that a customer with millions of
// touchpoints costs no more memory than one with ten.
//
// The document is an object:
//
//	{"format": "journey.dsar.v1", "customer_id": "…", "generated_at": "…",
//	 "touchpoints": [ … ], "dead_letters": [ … ], "state": [ … ],
//	 "stage_history": [ … ], "satisfaction_responses": [ … ], "consent": [ … ],
//	 "counts": {"touchpoints": 12, …}, "complete": true}
//
// Sections come in the order given; each is an array written one record at
// a time with a json.Encoder. "complete": true is written last, only when
// every section was read to the end: a document cut short by an error (the
// HTTP status is already sent) is invalid JSON and never claims to be
// whole.
package dsar

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Format names the layout of the document; a breaking change is a new one.
const Format = "journey.dsar.v1"

// Section is one array of the document. Fill calls emit once per record,
// in the order they should appear; an error from emit (the reader went
// away) must be returned.
type Section struct {
	Name string
	Fill func(ctx context.Context, emit func(v any) error) error
}

// ErrSection marks a section that is unusable (no name, a name used twice
// or one of the document's own keys).
var ErrSection = errors.New("dsar: bad section")

var ownKeys = map[string]bool{"format": true, "customer_id": true, "generated_at": true, "counts": true, "complete": true}

// Counts is how many records each section held.
type Counts map[string]int

// Write streams the document of customerID, generated at at, to w. It
// returns the counts per section. On error (an [*Error] naming the
// section) what reached w is an unfinished document without "complete",
// or nothing at all when the failure came before the first 32 KiB.
func Write(ctx context.Context, w io.Writer, customerID string, at time.Time, sections ...Section) (Counts, error) {
	seen := make(map[string]bool, len(sections))
	for _, s := range sections {
		switch {
		case s.Name == "" || s.Fill == nil:
			return nil, fmt.Errorf("%w: a section needs a name and a Fill", ErrSection)
		case seen[s.Name] || ownKeys[s.Name]:
			return nil, fmt.Errorf("%w: %q is used twice or is a key of the document", ErrSection, s.Name)
		}
		seen[s.Name] = true
	}
	cw := &countingWriter{w: w}
	bw := bufio.NewWriterSize(cw, 32<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	head := struct {
		Format      string    `json:"format"`
		CustomerID  string    `json:"customer_id"`
		GeneratedAt time.Time `json:"generated_at"`
	}{Format, customerID, at.UTC()}
	b, err := json.Marshal(head)
	if err != nil {
		return nil, err
	}
	// The head without its closing brace: the sections follow as keys.
	if _, err := bw.Write(b[:len(b)-1]); err != nil {
		return nil, err
	}
	counts := make(Counts, len(sections))
	for _, s := range sections {
		if err := writeSection(ctx, bw, enc, s, counts); err != nil {
			// What is still buffered is not sent: when nothing was, the
			// caller can still answer with an error instead of a body.
			return counts, &Error{Section: s.Name, Sent: cw.n > 0, Err: err}
		}
	}
	c, _ := json.Marshal(counts) // a map of ints
	if _, err := fmt.Fprintf(bw, ",\n\"counts\":%s,\n\"complete\":true}\n", c); err != nil {
		return counts, err
	}
	return counts, bw.Flush()
}

func writeSection(ctx context.Context, bw *bufio.Writer, enc *json.Encoder, s Section, counts Counts) error {
	name, _ := json.Marshal(s.Name)
	if _, err := fmt.Fprintf(bw, ",\n%s:[", name); err != nil {
		return err
	}
	n := 0
	err := s.Fill(ctx, func(v any) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if n > 0 {
			if err := bw.WriteByte(','); err != nil {
				return err
			}
		}
		n++
		return enc.Encode(v) // one record; its newline is JSON whitespace
	})
	counts[s.Name] = n
	if err != nil {
		return err
	}
	_, err = bw.WriteString("]")
	return err
}

// Error is a document cut short: the section whose read failed, whether
// any of the document had reached the writer (then it is an unfinished
// document without "complete"), and the cause.
type Error struct {
	Section string
	Sent    bool
	Err     error
}

func (e *Error) Error() string { return "dsar: section " + e.Section + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
