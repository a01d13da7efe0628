package jobs

import (
	"encoding/json"
	"math"
	"time"
)

// Kind says what happened in an event.
type Kind string

const (
	KindScheduled Kind = "scheduled" // a delayed job's first event, until it is due
	KindQueued    Kind = "queued"
	KindStarted   Kind = "started"
	KindProgress  Kind = "progress"
	KindLog       Kind = "log"
	KindRetrying  Kind = "retrying"
	KindSucceeded Kind = "succeeded"
	KindFailed    Kind = "failed"
	KindCanceled  Kind = "canceled"
)

// Status is the state a job is in.
type Status string

const (
	StatusScheduled Status = "scheduled" // a delayed job, not due yet
	StatusQueued    Status = "queued"
	StatusRunning   Status = "running"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	StatusCanceled  Status = "canceled"
)

// Terminal reports whether no event can follow a job in this status.
func (s Status) Terminal() bool {
	return s == StatusSucceeded || s == StatusFailed || s == StatusCanceled
}

// Valid reports whether s is one of the defined statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusScheduled, StatusQueued, StatusRunning, StatusSucceeded, StatusFailed, StatusCanceled:
		return true
	}
	return false
}

// Error is a machine-readable code plus a human message.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Event is one message on jobs.<id>.progress. Every event carries the full
// snapshot of the job, so the last event alone is the job's current state.
// Seq starts at 1 and grows by one per event of the job, across attempts.
type Event struct {
	JobID string `json:"job_id"`
	Type  string `json:"type,omitempty"`
	// Owner is who submitted the job ("user:<sub>" or "anon:<session>");
	// only they (and admins) may see it through the gateway.
	Owner string `json:"owner,omitempty"`
	// RetryOf is the id of the failed or canceled job this one retries.
	RetryOf string `json:"retry_of,omitempty"`
	// ScheduleID names the recurring schedule whose firing made the job.
	ScheduleID string `json:"schedule_id,omitempty"`
	Seq        uint64 `json:"seq"`
	Kind       Kind   `json:"kind"`
	Status     Status `json:"status"`
	// Priority is the job's (1 high, 2 normal, 3 low); absent: normal.
	Priority  int        `json:"priority,omitempty"`
	Percent   *float64   `json:"percent,omitempty"`
	Current   int64      `json:"current,omitempty"`
	Total     int64      `json:"total,omitempty"`
	Stage     string     `json:"stage,omitempty"`
	Message   string     `json:"message,omitempty"`
	Log       string     `json:"log,omitempty"`
	Attempt   int        `json:"attempt,omitempty"`
	Time      time.Time  `json:"time"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	StartedAt *time.Time `json:"started_at,omitempty"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
	// RunAt is when a delayed job is due; ExpiresAt when a job not started
	// by then ends canceled ("expired").
	RunAt     *time.Time `json:"run_at,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// NextAttemptAt is when a job that is waiting to be retried runs again.
	NextAttemptAt *time.Time      `json:"next_attempt_at,omitempty"`
	Result        json.RawMessage `json:"result,omitempty"`
	Error         *Error          `json:"error,omitempty"`
}

// MarshalJSON writes Time in UTC with nanoseconds (RFC 3339).
func (e Event) MarshalJSON() ([]byte, error) {
	type plain Event
	p := plain(e)
	p.Time = p.Time.UTC()
	p.CreatedAt = utcPtr(p.CreatedAt)
	p.StartedAt = utcPtr(p.StartedAt)
	p.EndedAt = utcPtr(p.EndedAt)
	p.RunAt = utcPtr(p.RunAt)
	p.ExpiresAt = utcPtr(p.ExpiresAt)
	p.NextAttemptAt = utcPtr(p.NextAttemptAt)
	return json.Marshal(p)
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// Next returns a copy of e as the start of the following event: the
// snapshot fields are kept, the per-event ones (kind, log line, time) are
// cleared and seq is advanced. Pointer fields are shared with e: replace
// them, never write through them.
func (e Event) Next(kind Kind, now time.Time) Event {
	n := e
	n.Seq = e.Seq + 1
	n.Kind = kind
	n.Log = ""
	n.Time = now
	return n
}

// Percentage returns a pointer to p clamped to 0..100 (NaN counts as 0),
// for Event.Percent.
func Percentage(p float64) *float64 {
	if math.IsNaN(p) {
		p = 0
	}
	p = min(max(p, 0), 100)
	return &p
}
