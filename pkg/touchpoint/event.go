package touchpoint

import (
	"time"
)

// Event is one CloudEvent as journey carries it: the context attributes and
// the payload as raw JSON bytes. The payload is decoded on demand with
// [Event.Payload] or checked with [Validate], so a consumer that only routes
// or stores events does not pay for it.
type Event struct {
	ID              string
	Source          string
	Type            string
	Subject         string // the customer id
	Time            time.Time
	DataContentType string
	DataSchema      string
	// Extensions holds extension attributes by lower-case name, as strings
	// (the canonical string form of CloudEvents' typed attributes).
	Extensions map[string]string
	// Data is the payload: a JSON object for every journey type.
	Data []byte
}

// Kind returns the event's kind, or "" for an unknown type.
func (e *Event) Kind() Kind {
	k, _ := KindOf(e.Type)
	return k
}

// Payload decodes Data per the event's type. It checks JSON shape and types
// but not the rules; use [Validate] for that.
func (e *Event) Payload() (Payload, error) {
	k, ok := KindOf(e.Type)
	if !ok {
		return Payload{}, unknownType(e.Type)
	}
	return DecodePayload(k, e.Data)
}

// New builds a fact event for a customer from a typed payload, with
// specversion, datacontenttype and dataschema filled in. id must be unique
// per source (retries must reuse it: it is the deduplication key).
func New(source, id, customerID string, at time.Time, p Typed) (Event, error) {
	data, err := p.MarshalJSON()
	if err != nil {
		return Event{}, err
	}
	t := TypeOf(p.Kind())
	return Event{
		ID:              id,
		Source:          source,
		Type:            t,
		Subject:         customerID,
		Time:            at.UTC(),
		DataContentType: ContentTypeJSON,
		DataSchema:      SchemaURI(t),
		Data:            data,
	}, nil
}

// reserved are the context attribute names that cannot be extensions.
var reserved = map[string]bool{
	"specversion": true, "id": true, "source": true, "type": true, "subject": true,
	"time": true, "datacontenttype": true, "dataschema": true, "data": true, "data_base64": true,
}

// validExtensionName: CloudEvents attribute names are a-z and 0-9 only.
func validExtensionName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
