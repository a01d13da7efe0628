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
	Owner     string          `json:"owner,omitempty"`
	// QueuedSeq is the stream sequence of the job's queued event (set by
	// Enqueue). The first delivery's runner writes the next event fenced
	// on it instead of reading the job's state first.
	QueuedSeq uint64 `json:"queued_seq,omitempty"`
}

// Queued is the job's first event, as Enqueue stores it; a runner that
// trusts QueuedSeq starts from it.
func (r Request) Queued() Event {
	created := r.CreatedAt.UTC()
	return Event{JobID: r.ID, Type: r.Type, Owner: r.Owner, Seq: 1, Kind: KindQueued, Status: StatusQueued, Time: created, CreatedAt: &created}
}

// MarshalJSON writes CreatedAt in UTC, like every time on the wire.
func (r Request) MarshalJSON() ([]byte, error) {
	type plain Request
	p := plain(r)
	p.CreatedAt = p.CreatedAt.UTC()
	return json.Marshal(p)
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

// CancelRequest is sent (NATS request) on jobs.<id>.cancel. The runner
// holding the job answers with a CancelReply; no answer means no runner
// holds it.
type CancelRequest struct {
	// By is who asked, as a role: CanceledByOwner or CanceledByAdmin.
	// Never an owner id: it ends up in the message users see.
	By     string `json:"by"`
	Reason string `json:"reason,omitempty"`
}

// Who canceled a job, as CancelRequest.By says it.
const (
	CanceledByOwner = "owner"
	CanceledByAdmin = "admin"
)

// CancelReply is the answer of the runner that holds the job.
type CancelReply struct {
	Accepted bool `json:"accepted"`
}

// CanceledError is the error stored on a canceled job: "canceled by its
// owner", "canceled by an admin", or just "canceled" when By is neither
// (an older gateway sent an owner id there, which users must not see),
// then ": <reason>" if one was given.
func CanceledError(c CancelRequest) *Error {
	msg := "canceled"
	switch c.By {
	case CanceledByOwner:
		msg = "canceled by its owner"
	case CanceledByAdmin:
		msg = "canceled by an admin"
	}
	if c.Reason != "" {
		msg += ": " + c.Reason
	}
	return &Error{Code: "canceled", Message: msg}
}
