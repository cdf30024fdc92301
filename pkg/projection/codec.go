package projection

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/klauspost/compress/s2"

	"github.com/klantreis/journey/pkg/journey"
)

// A record is stored as its JSON, which any key-value client shows as it
// is, unless that JSON is longer than compressAbove: then as an S2 block
// behind a marker byte that JSON never starts with. A record keeps every
// order, complaint and survey key of its customer, so a large account's
// record grows for as long as it buys; compressing the few large ones
// moves the point where a record no longer fits in a message (1 MiB by
// default: about 9 000 orders as JSON) several times further out, without
// making every small record unreadable to operators.
const (
	compressAbove        = 64 << 10
	s2Marker      byte   = 0x01
	jsonStart     byte   = '{'
	maxDecoded    uint64 = 64 << 20 // refuses a corrupt length before allocating it
)

// ErrTooLarge is returned by an [Encoder] for a record larger than its
// store can hold.
var ErrTooLarge = errors.New("projection: record too large for the store")

// EncodeRecord encodes r for a store: JSON, or S2-compressed JSON when it
// is longer than 64 KiB. DecodeRecord reads both.
func EncodeRecord(r *Record) ([]byte, error) {
	raw, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("projection: encode record: %w", err)
	}
	if len(raw) <= compressAbove {
		return raw, nil
	}
	out := make([]byte, 1+s2.MaxEncodedLen(len(raw)))
	out[0] = s2Marker
	enc := s2.EncodeBetter(out[1:], raw) // written in place into out[1:]
	return out[:1+len(enc)], nil
}

// RecordJSON returns the JSON of an encoded record, decompressed if it
// was compressed.
func RecordJSON(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, errors.New("projection: decode record: empty value")
	}
	switch b[0] {
	case jsonStart:
		return b, nil
	case s2Marker:
		n, err := s2.DecodedLen(b[1:])
		if err != nil {
			return nil, fmt.Errorf("projection: decode record: %w", err)
		}
		if uint64(n) > maxDecoded {
			return nil, fmt.Errorf("projection: decode record: %d bytes decompressed is over the %d limit", n, maxDecoded)
		}
		raw, err := s2.Decode(nil, b[1:])
		if err != nil {
			return nil, fmt.Errorf("projection: decode record: %w", err)
		}
		return raw, nil
	}
	return nil, fmt.Errorf("projection: decode record: unknown encoding (first byte 0x%02x)", b[0])
}

// DecodeRecord reads a record written by EncodeRecord, or by a projector
// that wrote plain JSON.
func DecodeRecord(b []byte) (*Record, error) {
	raw, err := RecordJSON(b)
	if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("projection: decode record: %w", err)
	}
	return &r, nil
}

// Upper bounds of encoding/json's output for SizeBound.
const (
	jsonTime = 40 // a quoted RFC 3339 time with nanoseconds and offset
	jsonInt  = 21 // a 64-bit integer with its sign
)

// jsonStr bounds a quoted string: a byte is at most six ("\u00XX").
func jsonStr(s string) int { return 2 + 6*len(s) }

func markBound(m *journey.Mark) int {
	if m == nil {
		return 8
	}
	return 32 + jsonTime + jsonInt + jsonStr(m.ID)
}

// SizeBound is an upper bound of the length of r's JSON, for a fraction
// of the cost of encoding it: a store that must refuse records over a
// limit encodes only those whose bound passes it. It walks every field
// that encodes to JSON; TestSizeBoundCoversEveryField fails when a field
// is added to the types it walks without being counted here.
func SizeBound(r *Record) int {
	n := 64 + 2*jsonInt // {"state":…,"last_seq":…,"bump":…}
	s := r.State
	if s == nil {
		return n
	}
	n += 256 // State's and Fold's field names and punctuation
	n += jsonStr(s.CustomerID) + jsonStr(s.AccountID) + markBound(s.AccountMark) + markBound(s.FirstTouch) +
		jsonTime + markBound(s.FirstVisit) + markBound(s.FirstQuote) + jsonTime
	for k, o := range s.Orders {
		n += jsonStr(k) + 32 + markBound(o.Placed) + markBound(o.Cancelled)
	}
	for k, c := range s.Complaints {
		n += jsonStr(k) + 32 + markBound(c.Opened) + markBound(c.Resolved)
	}
	for k, m := range s.Offboards {
		n += jsonStr(k) + 2 + markBound(&m)
	}
	if a := s.Survey; a != nil {
		n += markBound(&a.Mark) + 48 + jsonInt + jsonStr(a.Comment) + jsonStr(a.ContactID)
	}
	for k := range s.Responses {
		n += jsonStr(k) + 4
	}
	for k := range s.Revisions {
		n += jsonStr(k) + 2 + jsonInt
	}
	for k, c := range s.Consent {
		n += jsonStr(string(k)) + 32 + markBound(&c.Mark) + 8
	}
	for _, t := range s.History {
		n += 96 + jsonStr(string(t.From)) + jsonStr(string(t.To)) + jsonTime + jsonStr(string(t.Reason)) + jsonStr(t.RulesVersion)
		for _, c := range t.Causes {
			n += jsonStr(c) + 1
		}
	}
	f := &s.Fold
	n += markBound(&f.Last) + jsonStr(string(f.Stage)) + markBound(f.PeriodStart) + markBound(f.LastCounted) +
		markBound(f.Offboarded) + jsonInt
	return n
}
