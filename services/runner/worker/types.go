package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jobwire/jobwire/shared/jobs"
)

// Handler does the work of one job. It reports progress through job and
// returns the result (any value that encodes to JSON, or nil) or an error.
// It never sees NATS messages: the runner acks, naks and terminates.
// When ctx is cancelled it should return promptly.
type Handler func(ctx context.Context, job *Job) (result any, err error)

// JobType is one kind of job a runner can run.
type JobType struct {
	// Name is the stable wire name (a safe subject token), e.g. "demo".
	Name        string
	Description string
	// ExampleInput is shown to clients discovering the type.
	ExampleInput any
	// InputSchema is a JSON Schema (draft 2020-12) the gateway checks
	// inputs against at submit time. Empty means any input is accepted.
	InputSchema string
	Handler     Handler
}

// Info is the registration record stored in the types bucket.
func (t JobType) Info() (jobs.TypeInfo, error) {
	info := jobs.TypeInfo{Type: t.Name, Description: t.Description}
	if t.ExampleInput != nil {
		b, err := json.Marshal(t.ExampleInput)
		if err != nil {
			return info, fmt.Errorf("job type %s: example input: %w", t.Name, err)
		}
		info.ExampleInput = b
	}
	if t.InputSchema != "" {
		if !json.Valid([]byte(t.InputSchema)) {
			return info, fmt.Errorf("job type %s: input schema is not valid JSON", t.Name)
		}
		info.InputSchema = json.RawMessage(t.InputSchema)
	}
	return info, nil
}

// registry maps type names to job types.
type registry map[string]JobType

func newRegistry(types []JobType) (registry, error) {
	reg := make(registry, len(types))
	var errs []error
	for _, t := range types {
		if err := jobs.ValidateType(t.Name); err != nil {
			errs = append(errs, err)
			continue
		}
		if t.Handler == nil {
			errs = append(errs, fmt.Errorf("job type %s: no handler", t.Name))
			continue
		}
		if _, dup := reg[t.Name]; dup {
			errs = append(errs, fmt.Errorf("job type %s: registered twice", t.Name))
			continue
		}
		reg[t.Name] = t
	}
	if len(types) == 0 {
		errs = append(errs, errors.New("no job types registered"))
	}
	return reg, errors.Join(errs...)
}

// PermanentError marks an error that retrying cannot fix (bad input, a
// business rule): the job fails at once.
type PermanentError struct{ Err *jobs.Error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent returns a permanent error with a machine code and a message.
func Permanent(code, message string) error {
	return &PermanentError{Err: &jobs.Error{Code: code, Message: message}}
}
