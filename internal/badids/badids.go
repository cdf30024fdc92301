// Package badids holds the NATS-path cases of the identifier rules for the
// consumers' tests: messages that reach the stream without the collector
// or pkg/publish (a hand-written producer, another CloudEvents SDK) and
// must be dead-lettered with their reason, never stored or applied.
package badids

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/klantreis/journey/pkg/stream"
	"github.com/klantreis/journey/pkg/touchpoint"
)

// Case is one message and what a consumer must say of it.
type Case struct {
	Name string
	Msg  *nats.Msg
	// Reason is a part of the dead letter's reason; empty for the valid
	// control cases, which must be stored.
	Reason string
}

// Cases builds the messages; ids are prefixed with prefix.
func Cases(prefix string, at time.Time) []Case {
	structured := func(id, subject, typ, data string) []byte {
		return fmt.Appendf(nil, `{"specversion":"1.0","id":%q,"source":"badids","type":%q,"subject":"%s","time":%q,"data":%s}`,
			prefix+id, typ, subject, at.UTC().Format(time.RFC3339Nano), data)
	}
	visit := `{"channel":"web"}`
	order := `{"order_id":"o-1","status":"placed","amount":"1.00","currency":"EUR"}`
	on := func(subject string, body []byte) *nats.Msg {
		return &nats.Msg{Subject: subject, Data: body, Header: nats.Header{}}
	}
	visitOf := func(id string) string { return stream.PublishSubject(touchpoint.KindVisit, id) }
	return []Case{
		{"valid", on(visitOf("ok-1"), structured("valid", "ok-1", touchpoint.TypeVisit, visit)), ""},
		{"valid with a space", on(visitOf("bad-nl x"), structured("space", "bad-nl x", touchpoint.TypeVisit, visit)), ""},
		{"newline", on(visitOf("bad-nl\nx"), structured("nl", `bad-nl\nx`, touchpoint.TypeVisit, visit)), "subject: must not contain control characters, got U+000A at byte 6"},
		{"carriage return", on(visitOf("a\rb"), structured("cr", `a\rb`, touchpoint.TypeVisit, visit)), "got U+000D at byte 1"},
		{"NUL", on(visitOf("a\x00b"), structured("nul", `a\u0000b`, touchpoint.TypeVisit, visit)), "got U+0000 at byte 1"},
		{"tab", on(visitOf("a\tb"), structured("tab", `a\tb`, touchpoint.TypeVisit, visit)), "got U+0009 at byte 1"},
		{"ESC", on(visitOf("a\x1bb"), structured("esc", `a\u001bb`, touchpoint.TypeVisit, visit)), "got U+001B at byte 1"},
		{"DEL", on(visitOf("a\x7fb"), structured("del", `a\u007fb`, touchpoint.TypeVisit, visit)), "got U+007F at byte 1"},
		{"lone surrogate", on(visitOf("x"), structured("sur", `\ud800`, touchpoint.TypeVisit, visit)), `lone UTF-16 surrogate escape encodes no character: \ud800`},
		{"lone surrogate and a letter", on(visitOf("x"), structured("sur2", `\ud800\u0041`, touchpoint.TypeVisit, visit)), `\ud800 at byte`},
		{"order on a visit subject", on(visitOf("ok-2"), structured("kind", "ok-2", touchpoint.TypeOrder, order)), `is of kind "visit" but the event's type io.klantreis.touchpoint.order.v1 is of kind "order"`},
		{"another customer's subject", on(visitOf("someone-else"), structured("cust", "ok-3", touchpoint.TypeVisit, visit)), `names customer key "someone-else" but the event is about customer "ok-3"`},
	}
}
