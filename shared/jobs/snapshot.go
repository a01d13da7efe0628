package jobs

import (
	"encoding/json"
	"time"
)

// Snapshot is a job's current state as the HTTP API returns it. It is
// derived from the job's last event.
type Snapshot struct {
	ID        string     `json:"id"`
	Type      string     `json:"type,omitempty"`
	Status    Status     `json:"status"`
	Seq       uint64     `json:"seq"`
	Percent   *float64   `json:"percent,omitempty"`
	Current   int64      `json:"current,omitempty"`
	Total     int64      `json:"total,omitempty"`
	Stage     string     `json:"stage,omitempty"`
	Message   string     `json:"message,omitempty"`
	Attempt   int        `json:"attempt,omitempty"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	StartedAt *time.Time `json:"started_at,omitempty"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
	UpdatedAt time.Time  `json:"updated_at"`
	// NextAttemptAt is set while a failed attempt waits to be retried.
	NextAttemptAt *time.Time      `json:"next_attempt_at,omitempty"`
	Result        json.RawMessage `json:"result,omitempty"`
	Error         *Error          `json:"error,omitempty"`
}

// SnapshotOf returns the state that event ev describes.
func SnapshotOf(ev Event) Snapshot {
	return Snapshot{
		ID: ev.JobID, Type: ev.Type, Status: ev.Status, Seq: ev.Seq,
		Percent: ev.Percent, Current: ev.Current, Total: ev.Total,
		Stage: ev.Stage, Message: ev.Message, Attempt: ev.Attempt,
		CreatedAt: utcPtr(ev.CreatedAt), StartedAt: utcPtr(ev.StartedAt), EndedAt: utcPtr(ev.EndedAt),
		UpdatedAt: ev.Time.UTC(), NextAttemptAt: utcPtr(ev.NextAttemptAt), Result: ev.Result, Error: ev.Error,
	}
}
