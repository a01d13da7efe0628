package jobs

import (
	"encoding/json"
	"time"
)

// Snapshot is a job's current state as the HTTP API returns it. It is
// derived from the job's last event.
type Snapshot struct {
	ID   string `json:"id"`
	Type string `json:"type,omitempty"`
	// RetryOf is the id of the job this one retries; RetriedAs the id of
	// the job that retries this one (GET /api/jobs/{id} fills it in).
	RetryOf   string `json:"retry_of,omitempty"`
	RetriedAs string `json:"retried_as,omitempty"`
	// ScheduleID names the recurring schedule whose firing made the job.
	ScheduleID string `json:"schedule_id,omitempty"`
	// Priority is the job's (1 high, 2 normal, 3 low); absent: normal.
	Priority  int        `json:"priority,omitempty"`
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
	// RunAt: a delayed job's due time; ExpiresAt: its deadline to start.
	RunAt     *time.Time `json:"run_at,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	UpdatedAt time.Time  `json:"updated_at"`
	// DurationMS is EndedAt - StartedAt in milliseconds, once the job
	// has ended after it started.
	DurationMS *int64 `json:"duration_ms,omitempty"`
	// NextAttemptAt is set while a failed attempt waits to be retried.
	NextAttemptAt *time.Time      `json:"next_attempt_at,omitempty"`
	Result        json.RawMessage `json:"result,omitempty"`
	Error         *Error          `json:"error,omitempty"`
	// Input is the job's input, from its request; only GET
	// /api/jobs/{id} fills it in (events do not carry it).
	Input json.RawMessage `json:"input,omitempty"`
}

// SnapshotOf returns the state that event ev describes.
func SnapshotOf(ev Event) Snapshot {
	return Snapshot{
		ID: ev.JobID, Type: ev.Type, RetryOf: ev.RetryOf, ScheduleID: ev.ScheduleID, Priority: ev.Priority, Status: ev.Status, Seq: ev.Seq,
		RunAt: utcPtr(ev.RunAt), ExpiresAt: utcPtr(ev.ExpiresAt),
		Percent: ev.Percent, Current: ev.Current, Total: ev.Total,
		Stage: ev.Stage, Message: ev.Message, Attempt: ev.Attempt,
		CreatedAt: utcPtr(ev.CreatedAt), StartedAt: utcPtr(ev.StartedAt), EndedAt: utcPtr(ev.EndedAt),
		UpdatedAt: ev.Time.UTC(), NextAttemptAt: utcPtr(ev.NextAttemptAt), Result: ev.Result, Error: ev.Error,
		DurationMS: durationMS(ev.StartedAt, ev.EndedAt),
	}
}

// durationMS is end - start in milliseconds, or nil unless both are set.
func durationMS(start, end *time.Time) *int64 {
	if start == nil || end == nil {
		return nil
	}
	d := max(end.Sub(*start), 0).Milliseconds()
	return &d
}
