package jobops

import (
	"context"
	"errors"

	"github.com/jobwire/jobwire/shared/jobs"
)

// Get reads a job's current state. A job who may not see answers exactly
// as an unknown one.
func (s *Service) Get(ctx context.Context, who Caller, id string) (jobs.Event, error) {
	job, err := s.ReadJob(ctx, who, id)
	return job.State, err
}

// ReadJob reads a job's owner record and state (see jobs.ReadJob). A job
// who may not see answers exactly as an unknown one: who owns a job is
// what its owner record says, never an event.
func (s *Service) ReadJob(ctx context.Context, who Caller, id string) (jobs.Job, error) {
	if err := jobs.ValidateID(id); err != nil {
		return jobs.Job{}, err
	}
	job, err := jobs.ReadJob(ctx, s.streams.Events, s.streams.Records, id)
	switch {
	case errors.Is(err, jobs.ErrNotFound):
		return jobs.Job{}, s.notFound(ctx, who, id)
	case err != nil:
		return jobs.Job{}, unavailable(err)
	case !who.CanSee(job.Owner.Owner):
		return jobs.Job{}, &JobError{ID: id, Err: ErrNotFound}
	}
	return job, nil
}

// notFound is the error for a job with no stored messages: ErrExpired if
// it ended and its request and events have aged out since (and who owned
// it: its end record, which outlives them, says), ErrNotFound otherwise.
func (s *Service) notFound(ctx context.Context, who Caller, id string) error {
	if end, ended, err := jobs.ReadEnd(ctx, s.streams.Records, id); err == nil && ended && who.CanSee(end.Owner) {
		return &JobError{ID: id, Err: ErrExpired}
	}
	return &JobError{ID: id, Err: ErrNotFound}
}
