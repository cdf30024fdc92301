package projection

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/klauspost/compress/s2"
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
