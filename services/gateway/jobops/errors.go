package jobops

import (
	"errors"

	"github.com/jobwire/jobwire/shared/jobs"
)

// The errors of the job rules, all in this file. They say what went wrong
// and carry what an answer needs; the transports turn each into their own
// answer in one place (httpapi/errors.go).
var (
	// ErrInvalidID: a job id that is not one subject token. The error that
	// wraps it says why (it comes from jobs.ValidateID).
	ErrInvalidID = jobs.ErrInvalidID

	// ErrNotFound: no such job, or one the caller may not see (the two
	// answer alike). Returned inside a *JobError.
	ErrNotFound = errors.New("no such job")

	// ErrExpired: the job ended and its events have aged out since; the
	// caller owns it. Returned inside a *JobError.
	ErrExpired = errors.New("the job has ended and its records have expired")

	// ErrInProgress: the first submission with this idempotency key is
	// still being stored.
	ErrInProgress = errors.New("a submission with this idempotency key is still being processed")

	// ErrIdempotencyKeyReused: the key was used for a different request.
	ErrIdempotencyKeyReused = errors.New("the idempotency key was used for a different request")

	// ErrInvalidIdempotencyKey: longer than 255 characters, or not
	// printable ASCII.
	ErrInvalidIdempotencyKey = errors.New("an idempotency key must be at most 255 printable ASCII characters")

	// ErrIdempotencyRecordDamaged: the record stored for a key cannot be read.
	ErrIdempotencyRecordDamaged = errors.New("stored idempotency record is damaged")

	// ErrScheduleNotFound: no such recurring schedule, or one the caller
	// may not see (the two answer alike).
	ErrScheduleNotFound = errors.New("no such schedule")

	// ErrBusy: a cancel kept losing the race against the job's runner.
	ErrBusy = errors.New("the job keeps changing")
)

// JobError is ErrNotFound or ErrExpired for the job ID.
type JobError struct {
	ID  string
	Err error
}

func (e *JobError) Error() string { return "job " + e.ID + ": " + e.Err.Error() }
func (e *JobError) Unwrap() error { return e.Err }

// InvalidArgumentError: an argument breaks a rule (a missing type, a bad
// filter, a cancel reason too long); Msg says which.
type InvalidArgumentError struct{ Msg string }

func (e *InvalidArgumentError) Error() string { return e.Msg }

// UnknownTypeError: no runner has registered the job type.
type UnknownTypeError struct{ Type string }

func (e *UnknownTypeError) Error() string { return "unknown job type " + e.Type }

// InvalidInputError: the input does not match the job type's JSON Schema.
type InvalidInputError struct {
	Type string
	Err  error
}

func (e *InvalidInputError) Error() string { return "input for " + e.Type + ": " + e.Err.Error() }
func (e *InvalidInputError) Unwrap() error { return e.Err }

// AlreadyFinishedError: the job ended before it could be canceled; Job is
// its final state.
type AlreadyFinishedError struct{ Job jobs.Snapshot }

func (e *AlreadyFinishedError) Error() string { return "job already " + string(e.Job.Status) }

// NotRetryableError: only a failed or canceled job can be retried; Job is
// its current state (queued, running or succeeded).
type NotRetryableError struct{ Job jobs.Snapshot }

func (e *NotRetryableError) Error() string {
	return "job " + e.Job.ID + " is " + string(e.Job.Status) + ": only a failed or canceled job can be retried"
}

// UnavailableError: the job store (NATS) could not be reached; Err is why.
// Trying again shortly may work.
type UnavailableError struct{ Err error }

func (e *UnavailableError) Error() string { return "the job store is unreachable: " + e.Err.Error() }
func (e *UnavailableError) Unwrap() error { return e.Err }

func unavailable(err error) error { return &UnavailableError{Err: err} }
