package jobs

import (
	"encoding/json"
	"time"
)

// Request is the message stored on jobwire.queue.<type>: one job to run.
type Request struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Input     json.RawMessage `json:"input,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
}

// TypeInfo is what a runner registers for a job type in TypesBucket, so the
// gateway can validate submissions and clients can discover types.
type TypeInfo struct {
	Type         string          `json:"type"`
	Description  string          `json:"description"`
	ExampleInput json.RawMessage `json:"example_input,omitempty"`
	// InputSchema is a JSON Schema (draft 2020-12) the input must satisfy.
	InputSchema json.RawMessage `json:"input_schema,omitempty"`
}
