package jobs

import (
	"encoding/json"
	"fmt"
	"time"
)

// Request is the message stored on jobwire.queue.<type>.<id>: one job to
// run. It is also the job's first event: its JSON is the job's "queued"
// event (seq 1) with the job's input added, so the stream republishes it
// on jobs.<id>.progress like every later event, and a job's history
// starts with it. Who owns the job is its Owner, fixed for good: no later
// write can change a request (runners may not write requests).
type Request struct {
	ID        string
	Type      string
	Input     json.RawMessage
	CreatedAt time.Time
	Owner     string
	// RetryOf is the id of the failed or canceled job this one retries
	// (see RecordRetry), if it is a retry.
	RetryOf string
	// RunAt is when a delayed job is due (nil: at once). ExpiresAt is when
	// a job not started yet ends "canceled" (reason "expired") instead.
	RunAt     *time.Time
	ExpiresAt *time.Time
	// Priority is PriorityHigh, PriorityNormal or PriorityLow (0: normal).
	Priority int
	// ScheduleID names the recurring schedule whose firing made the job.
	ScheduleID string
	// Deferred marks a delayed job's first message, stored at submit on
	// SchedSubject: its "scheduled" event (seq 1). When the job is due, its
	// request proper is stored on its queue subject as the next event
	// (Seq 2, "queued"). Seq 0 means 1.
	Deferred bool
	Seq      uint64
}

// Priorities: a runner with a free slot takes a job of a higher priority
// first (docs/lifecycle.md says how lower ones are not starved).
const (
	PriorityHigh   = 1
	PriorityNormal = 2
	PriorityLow    = 3
)

// PriorityOf is p, or PriorityNormal for 0.
func PriorityOf(p int) int {
	if p == 0 {
		return PriorityNormal
	}
	return p
}

// requestJSON is a Request on the wire: a queued Event's fields, in the
// same order, and the input.
type requestJSON struct {
	JobID      string          `json:"job_id"`
	Type       string          `json:"type"`
	Owner      string          `json:"owner,omitempty"`
	RetryOf    string          `json:"retry_of,omitempty"`
	ScheduleID string          `json:"schedule_id,omitempty"`
	Seq        uint64          `json:"seq"`
	Kind       Kind            `json:"kind"`
	Status     Status          `json:"status"`
	Priority   int             `json:"priority,omitempty"`
	Time       time.Time       `json:"time"`
	CreatedAt  time.Time       `json:"created_at"`
	RunAt      *time.Time      `json:"run_at,omitempty"`
	ExpiresAt  *time.Time      `json:"expires_at,omitempty"`
	Input      json.RawMessage `json:"input,omitempty"`
}

// Queued is the request seen as an event, without its input: the job's
// "queued" event, or for a deferred request its "scheduled" one.
func (r Request) Queued() Event {
	created := r.CreatedAt.UTC()
	ev := Event{
		JobID: r.ID, Type: r.Type, Owner: r.Owner, RetryOf: r.RetryOf, ScheduleID: r.ScheduleID, Seq: max(r.Seq, 1),
		Kind: KindQueued, Status: StatusQueued, Priority: r.Priority, Time: created, CreatedAt: &created,
		RunAt: utcPtr(r.RunAt), ExpiresAt: utcPtr(r.ExpiresAt),
	}
	if r.Deferred {
		ev.Kind, ev.Status = KindScheduled, StatusScheduled
	}
	return ev
}

// MarshalJSON writes the request as its event (Queued) plus its input,
// every time in UTC.
func (r Request) MarshalJSON() ([]byte, error) {
	ev := r.Queued()
	return json.Marshal(requestJSON{
		JobID: r.ID, Type: r.Type, Owner: r.Owner, RetryOf: r.RetryOf, ScheduleID: r.ScheduleID, Seq: ev.Seq, Kind: ev.Kind, Status: ev.Status,
		Priority: r.Priority, Time: ev.Time, CreatedAt: *ev.CreatedAt, RunAt: ev.RunAt, ExpiresAt: ev.ExpiresAt, Input: r.Input,
	})
}

// UnmarshalJSON reads a request: a "queued" event (seq 1, or later for a
// delayed job's request) or a delayed job's "scheduled" event (seq 1).
// Anything else is refused.
func (r *Request) UnmarshalJSON(b []byte) error {
	var w requestJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	deferred := w.Kind == KindScheduled
	if w.Seq == 0 || !(w.Kind == KindQueued || deferred && w.Seq == 1) {
		return fmt.Errorf("a job request is the job's queued event (or a delayed job's scheduled event, seq 1); got seq %d, kind %q", w.Seq, w.Kind)
	}
	*r = Request{
		ID: w.JobID, Type: w.Type, Input: w.Input, CreatedAt: w.CreatedAt, Owner: w.Owner, RetryOf: w.RetryOf,
		RunAt: w.RunAt, ExpiresAt: w.ExpiresAt, Priority: w.Priority, ScheduleID: w.ScheduleID, Deferred: deferred, Seq: w.Seq,
	}
	return nil
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
	// CanceledByDeadline: the job had not started by its expires_at.
	CanceledByDeadline = "deadline"
)

// CancelReply is the answer of the runner that holds the job.
type CancelReply struct {
	Accepted bool `json:"accepted"`
}

// CanceledError is the error stored on a canceled job: "canceled by its
// owner", "canceled by an admin", code "expired" for a job that missed
// its deadline, or just "canceled" when By is none of these
// (an older gateway sent an owner id there, which users must not see),
// then ": <reason>" if one was given.
func CanceledError(c CancelRequest) *Error {
	if c.By == CanceledByDeadline {
		return &Error{Code: "expired", Message: "expired: not started by its deadline (expires_at)"}
	}
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
