package touchpoint

import (
	"bytes"
	"fmt"
	"io/fs"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/klantreis/journey/schemas"
)

// SchemaSet is the compiled set of published JSON Schemas. It is the
// reference that [Validate] mirrors; it is slower, so it serves tests,
// tools and callers that want the schema's own verdict.
type SchemaSet struct {
	byType map[string]*jsonschema.Schema
}

var (
	schemaOnce sync.Once
	schemaSet  *SchemaSet
	schemaErr  error
)

// Schemas compiles the embedded schemas once and returns them.
func Schemas() (*SchemaSet, error) {
	schemaOnce.Do(func() { schemaSet, schemaErr = compileSchemas() })
	return schemaSet, schemaErr
}

func compileSchemas() (*SchemaSet, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	entries, err := fs.ReadDir(schemas.Events, "events")
	if err != nil {
		return nil, err
	}
	for _, ent := range entries {
		b, err := fs.ReadFile(schemas.Events, "events/"+ent.Name())
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("schema %s: %w", ent.Name(), err)
		}
		if err := c.AddResource(schemas.BaseURI+ent.Name(), doc); err != nil {
			return nil, fmt.Errorf("schema %s: %w", ent.Name(), err)
		}
	}
	set := &SchemaSet{byType: make(map[string]*jsonschema.Schema, len(types))}
	for t, info := range types {
		s, err := c.Compile(schemas.BaseURI + info.schema)
		if err != nil {
			return nil, fmt.Errorf("schema %s: %w", info.schema, err)
		}
		set.byType[t] = s
	}
	return set, nil
}

// ValidateData checks an event's data against the JSON Schema of its type.
func (s *SchemaSet) ValidateData(ceType string, data []byte) error {
	sch, ok := s.byType[ceType]
	if !ok {
		return unknownType(ceType)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%w: data is not valid JSON: %v", ErrMalformed, err)
	}
	if err := sch.Validate(doc); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}
