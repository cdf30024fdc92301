package stream

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/klantreis/journey/pkg/touchpoint"
)

// MsgID is the JetStream deduplication id of an event: a hash of (source,
// id), which CloudEvents makes unique per event. A retry or a resend of the
// same event within the duplicate window is dropped by the server.
func MsgID(source, id string) string {
	h := sha256.New()
	h.Write([]byte(source))
	h.Write([]byte{0})
	h.Write([]byte(id))
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// NewMsg encodes an event as a NATS message in the CloudEvents binary mode
// (ce- headers, payload = data) on subject, with its deduplication id. A
// correction (revision N > 0) gets an id of its own, MsgID + "-rN": with
// the original's id the stream would drop it as a duplicate when it is
// sent within the duplicate window (a correction made at once, the usual
// case of a typo), and the rectification would be lost.
func NewMsg(subject string, e *touchpoint.Event) *nats.Msg {
	m := &nats.Msg{Subject: subject, Data: e.Data, Header: make(nats.Header, 10)}
	e.SetBinaryHeaders(m.Header)
	id := MsgID(e.Source, e.ID)
	if rev, ok := touchpoint.Revision(e); ok && rev > 0 {
		id += "-r" + strconv.FormatUint(uint64(rev), 10)
	}
	m.Header[jetstream.MsgIDHeader] = []string{id}
	return m
}

// NewFactMsg is [NewMsg] on the event's publish subject. The event must be
// a fact (touchpoint or offboarded) with a subject.
func NewFactMsg(e *touchpoint.Event) (*nats.Msg, error) {
	subject, err := FactSubject(e)
	if err != nil {
		return nil, err
	}
	return NewMsg(subject, e), nil
}

// DecodeMsg turns a NATS message back into an event: binary mode when it
// has a ce-specversion header, else structured mode (the payload is a JSON
// CloudEvent, as sdk-go's JetStream sender sends, with or without headers).
// It does not validate the payload; see [touchpoint.Validate].
func DecodeMsg(header nats.Header, data []byte) (touchpoint.Event, error) {
	if touchpoint.IsBinary(header) {
		return touchpoint.FromBinary(header, data, false)
	}
	return touchpoint.UnmarshalStructured(data)
}
