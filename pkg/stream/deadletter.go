package stream

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Headers a dead letter carries besides the original ones.
const (
	HeaderDeadReason    = "Journey-Dead-Reason"
	HeaderDeadClass     = "Journey-Dead-Class"
	HeaderDeadConsumer  = "Journey-Dead-Consumer"
	HeaderDeadSubject   = "Journey-Original-Subject"
	HeaderDeadSeq       = "Journey-Original-Seq"
	HeaderDeadDelivered = "Journey-Delivery-Count"
	// HeaderDeadTruncated is set, to the original body's length, when the
	// body was cut to fit the broker's message limit beside the dead-letter
	// headers. The whole message stays in its stream at Journey-Original-Seq.
	HeaderDeadTruncated = "Journey-Dead-Truncated"
)

// DeadLetter describes one message a consumer gave up on, and why.
type DeadLetter struct {
	Consumer  string
	Subject   string // original subject
	StreamSeq uint64
	Delivered uint64
	Header    nats.Header
	Data      []byte
	// Class is a short machine-readable reason: "undecodable", "invalid",
	// "rejected" (by the database for that row), ...
	Class string
	Err   error
	// ID, when set, is the dead letter's message id (deduplication key)
	// instead of one derived from (Consumer, StreamSeq): for a dead letter
	// that is not one stored message, such as one row of a batch.
	ID string
}

// FromMsg fills a DeadLetter from a consumed message.
func FromMsg(consumer string, m jetstream.Msg, class string, err error) DeadLetter {
	d := DeadLetter{Consumer: consumer, Subject: m.Subject(), Header: m.Headers(), Data: m.Data(), Class: class, Err: err}
	if md, mdErr := m.Metadata(); mdErr == nil {
		d.StreamSeq = md.Sequence.Stream
		d.Delivered = md.NumDelivered
	}
	return d
}

// PublishDeadLetter stores d on the dead-letter stream and waits for the
// ack. Its message id is d.ID or else derived from (consumer, stream
// sequence), so a consumer that dead-letters the same message twice stores
// it once.
func PublishDeadLetter(ctx context.Context, js jetstream.JetStream, d DeadLetter) error {
	h := make(nats.Header, len(d.Header)+7)
	for k, v := range d.Header {
		if k == jetstream.MsgIDHeader {
			continue
		}
		h[k] = v
	}
	reason := "unknown"
	if d.Err != nil {
		reason = d.Err.Error()
	}
	if len(reason) > 4096 {
		// Cut on a rune boundary: a header value stays valid UTF-8.
		reason = strings.ToValidUTF8(reason[:4096], "")
	}
	h.Set(HeaderDeadReason, reason)
	h.Set(HeaderDeadClass, d.Class)
	h.Set(HeaderDeadConsumer, d.Consumer)
	h.Set(HeaderDeadSubject, d.Subject)
	h.Set(HeaderDeadSeq, strconv.FormatUint(d.StreamSeq, 10))
	h.Set(HeaderDeadDelivered, strconv.FormatUint(d.Delivered, 10))
	id := d.ID
	if id == "" {
		id = "dl-" + d.Consumer + "-" + strconv.FormatUint(d.StreamSeq, 10)
	}
	h.Set(jetstream.MsgIDHeader, id)
	msg := &nats.Msg{Subject: DeadLetterSubject(d.Consumer), Header: h, Data: d.Data}
	// A message near the limit would no longer fit with the reason added,
	// and a refused dead letter would be retried forever. The room is
	// counted with the truncation header in place; 64 bytes spare the
	// protocol's framing.
	room := func() int { return int(js.Conn().MaxPayload()) - headerSize(h) - 64 }
	if len(msg.Data) > room() {
		h.Set(HeaderDeadTruncated, strconv.Itoa(len(msg.Data)))
		msg.Data = msg.Data[:max(room(), 0)]
	}
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("stream: dead-letter seq %d: %w", d.StreamSeq, err)
	}
	return nil
}

// headerSize is the encoded size of h ("NATS/1.0\r\n", "key: value\r\n"
// per value, "\r\n").
func headerSize(h nats.Header) int {
	n := 12
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}
