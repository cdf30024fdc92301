package stream

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/klantreis/journey/pkg/touchpoint"
)

// Stream and subject names.
const (
	TouchpointStream = "TOUCHPOINTS"
	DerivedStream    = "DERIVED"
	DeadLetterStream = "DEADLETTER"

	touchpointPrefix = "touchpoint."
	derivedPrefix    = "customer."
	deadLetterPrefix = "deadletter."
)

// CustomerKey maps a customer id to a subject-safe token, injectively:
// letters, digits and '-' stay; every other byte becomes _XX (hex). So
// "acme.nl/42" becomes "acme_2Enl_2F42" and no two ids share a key.
func CustomerKey(customerID string) string {
	safe := true
	for i := 0; i < len(customerID); i++ {
		if !keyByteOK(customerID[i]) {
			safe = false
			break
		}
	}
	if safe && customerID != "" {
		return customerID
	}
	var b strings.Builder
	b.Grow(len(customerID) + 8)
	if customerID == "" {
		return "_"
	}
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(customerID); i++ {
		c := customerID[i]
		if keyByteOK(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('_')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String()
}

// CustomerID reverses [CustomerKey]. It accepts only keys CustomerKey
// produces (upper-case hex, escapes only where needed), so that key and id
// correspond one to one.
func CustomerID(key string) (string, bool) {
	id, ok := customerID(key)
	if !ok || CustomerKey(id) != key {
		return "", false
	}
	return id, true
}

func customerID(key string) (string, bool) {
	if key == "_" {
		return "", true
	}
	if strings.IndexByte(key, '_') < 0 {
		return key, true
	}
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		if key[i] != '_' {
			b.WriteByte(key[i])
			continue
		}
		if i+2 >= len(key) {
			return "", false
		}
		v, err := strconv.ParseUint(key[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), true
}

func keyByteOK(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-'
}

// PublishSubject is where a producer publishes a fact event of kind k
// for a customer: "touchpoint.<kind>.<customer key>" (see [CustomerKey]).
// A message on any other subject is stored by no stream: JetStream then
// answers nothing, and the client's error is "no response from stream"
// ([jetstream.ErrNoStreamResponse]).
func PublishSubject(k touchpoint.Kind, customerID string) string {
	return touchpointPrefix + string(k) + "." + CustomerKey(customerID)
}

// ErrNotFact marks an event whose CloudEvents type is not a fact kind: it
// has no subject in the touchpoint stream.
var ErrNotFact = errors.New("stream: not a fact event type")

// FactSubject is [PublishSubject] for e: its kind from its CloudEvents
// type, its customer from its subject. It is what to publish e on when
// publishing straight to NATS instead of through pkg/publish; an error
// wraps [ErrNotFact].
func FactSubject(e *touchpoint.Event) (string, error) {
	k, ok := touchpoint.KindOf(e.Type)
	if !ok || !touchpoint.IsFact(e.Type) {
		return "", fmt.Errorf("%w: %q", ErrNotFact, e.Type)
	}
	return PublishSubject(k, e.Subject), nil
}

// KindFilter selects one kind's events across all customers and partitions.
func KindFilter(k touchpoint.Kind) string {
	return touchpointPrefix + "*." + string(k) + ".*"
}

// CustomerFilter selects every event of one customer: one read (or purge)
// rebuilds or forgets that customer.
func CustomerFilter(customerID string) string {
	return touchpointPrefix + "*.*." + CustomerKey(customerID)
}

// PartitionFilter selects one partition's events, all kinds.
func PartitionFilter(p int) string {
	return touchpointPrefix + strconv.Itoa(p) + ".>"
}

// AllFactsFilter selects every stored fact event.
const AllFactsFilter = touchpointPrefix + "*.*.*"

// ParseStoredSubject splits a stored touchpoint subject into its parts.
func ParseStoredSubject(subject string) (partition int, kind touchpoint.Kind, customerKey string, ok bool) {
	if !strings.HasPrefix(subject, touchpointPrefix) {
		return 0, "", "", false
	}
	parts := strings.SplitN(subject[len(touchpointPrefix):], ".", 3)
	if len(parts) != 3 {
		return 0, "", "", false
	}
	p, err := strconv.Atoi(parts[0])
	if err != nil {
		return 0, "", "", false
	}
	return p, touchpoint.Kind(parts[1]), parts[2], true
}

// DerivedSubject is where the projector publishes a derived event.
func DerivedSubject(k touchpoint.Kind, customerID string) string {
	return derivedPrefix + string(k) + "." + CustomerKey(customerID)
}

// DeadLetterSubject is where a consumer sends what it gave up on.
func DeadLetterSubject(consumer string) string {
	return deadLetterPrefix + consumer
}

// CheckStored reports whether a stored touchpoint's subject says what its
// event says: the kind of its type and the key of its customer id. A
// message published on another customer's subject would sit in the wrong
// partition (out of order for its customer) and escape a purge of its
// customer by subject, so consumers dead-letter it instead. The error
// wraps touchpoint.ErrInvalid.
func CheckStored(subject string, e *touchpoint.Event) error {
	_, kind, key, ok := ParseStoredSubject(subject)
	if !ok {
		return fmt.Errorf("%w: subject %q is not touchpoint.<partition>.<kind>.<customer-key>", touchpoint.ErrInvalid, subject)
	}
	if k := e.Kind(); kind != k {
		return fmt.Errorf("%w: subject %q is of kind %q but the event's type %s is of kind %q", touchpoint.ErrInvalid, subject, kind, e.Type, k)
	}
	if want := CustomerKey(e.Subject); key != want {
		return fmt.Errorf("%w: subject %q names customer key %q but the event is about customer %q (key %q)", touchpoint.ErrInvalid, subject, key, e.Subject, want)
	}
	return nil
}
