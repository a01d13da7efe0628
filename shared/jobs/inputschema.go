package jobs

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// InputSchema is a job type's compiled input schema (TypeInfo.InputSchema).
// The gateway and the Go client check inputs with it, so they agree.
type InputSchema struct{ schema *jsonschema.Schema }

// CompileInputSchema compiles the JSON Schema a runner registered for typ.
// An empty schema compiles to nil: any input is accepted.
func CompileInputSchema(typ string, raw json.RawMessage) (*InputSchema, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	comp := jsonschema.NewCompiler()
	url := "jobwire:/types/" + typ + ".json"
	if err := comp.AddResource(url, doc); err != nil {
		return nil, err
	}
	s, err := comp.Compile(url)
	if err != nil {
		return nil, err
	}
	return &InputSchema{s}, nil
}

// Validate checks input (none: the empty object). The error lists each
// problem as "location: problem", separated by "; ".
func (s *InputSchema) Validate(input json.RawMessage) error {
	if s == nil {
		return nil
	}
	if len(input) == 0 {
		input = json.RawMessage("{}")
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(input))
	if err != nil {
		return err
	}
	err = s.schema.Validate(v)
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	var msgs []string
	for _, e := range ve.BasicOutput().Errors {
		if e.Error == nil {
			continue
		}
		loc := e.InstanceLocation
		if loc == "" {
			loc = "/"
		}
		msgs = append(msgs, loc+": "+e.Error.String())
	}
	if len(msgs) == 0 {
		return ve
	}
	return errors.New(strings.Join(msgs, "; "))
}
