package jobops

import (
	"context"
	"errors"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
)

// Retry queues a failed or canceled job again: a new job of the same
// type, input and owner, whose request carries RetryOf (the old id). The
// old job's retry record (jobs.RecordRetry, write-once) names the new one,
// and it is written before the new job is stored, so a job is retried at
// most once: a second Retry (or one racing this one) answers with the job
// the record names, and replayed is true. A retry whose record was written
// but whose job was not (the store went away in between) is completed by
// the next Retry, which stores the recorded job (its id fences the write).
func (s *Service) Retry(ctx context.Context, who Caller, id string) (snap jobs.Snapshot, replayed bool, err error) {
	job, err := s.ReadJob(ctx, who, id)
	if err != nil {
		return jobs.Snapshot{}, false, err
	}
	if st := job.State.Status; st != jobs.StatusFailed && st != jobs.StatusCanceled {
		return jobs.Snapshot{}, false, &NotRetryableError{Job: jobs.SnapshotOf(job.State)}
	}
	if job.Owner.Owner == "" {
		// Events without a request (not jobwire's doing): no input to retry.
		return jobs.Snapshot{}, false, &JobError{ID: id, Err: ErrNotFound}
	}
	// As Submit: one deadline, and a client that goes away half-way must
	// not leave a retry record without its job.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), submitTimeout)
	defer cancel()

	rec, found, err := jobs.ReadRetry(ctx, s.streams.Records, id)
	if err != nil {
		return jobs.Snapshot{}, false, unavailable(err)
	}
	now := time.Now().UTC()
	if !found {
		req := SubmitRequest{Type: job.Owner.Type, Input: job.Input}
		if _, err := s.check(ctx, req); err != nil {
			return jobs.Snapshot{}, false, err
		}
		rec = jobs.RetryRecord{RetriedAs: jobs.NewID(now), Time: now}
		if err := jobs.RecordRetry(ctx, s.js, id, rec.RetriedAs, now); err != nil {
			// Recorded already (a racing retry), or the answer was lost
			// after it was stored: the stored record decides.
			var readErr error
			if rec, found, readErr = jobs.ReadRetry(ctx, s.streams.Records, id); readErr != nil || !found {
				return jobs.Snapshot{}, false, unavailable(err)
			}
			replayed = true
		}
	} else {
		replayed = true
	}
	if replayed {
		ev, _, err := jobs.State(ctx, s.streams.Events, s.streams.Records, rec.RetriedAs)
		if err == nil {
			return jobs.SnapshotOf(ev), true, nil
		}
		if !errors.Is(err, jobs.ErrNotFound) {
			return jobs.Snapshot{}, false, unavailable(err)
		}
		// Recorded, not stored yet (or never): store it below.
	}
	// Created when the record was written: whoever stores the recorded
	// job (this retry, or one racing it) stores the same request.
	queued, err := jobs.Enqueue(ctx, s.js, jobs.Request{
		ID: rec.RetriedAs, Type: job.Owner.Type, Input: job.Input, CreatedAt: rec.Time, Owner: job.Owner.Owner, RetryOf: id,
	})
	if errors.Is(err, jobs.ErrDuplicateID) {
		ev, _, err := jobs.State(ctx, s.streams.Events, s.streams.Records, rec.RetriedAs)
		if err != nil {
			return jobs.Snapshot{}, false, unavailable(err)
		}
		return jobs.SnapshotOf(ev), true, nil
	}
	if err != nil {
		return jobs.Snapshot{}, false, unavailable(err)
	}
	return jobs.SnapshotOf(queued), replayed, nil
}

// Snapshot reads a job's current state as GET /api/jobs/{id} answers it:
// its state, input (from its request) and, for a failed or canceled job,
// the job that retries it. A job who may not see answers exactly as an
// unknown one.
func (s *Service) Snapshot(ctx context.Context, who Caller, id string) (jobs.Snapshot, error) {
	job, err := s.ReadJob(ctx, who, id)
	if err != nil {
		return jobs.Snapshot{}, err
	}
	snap := jobs.SnapshotOf(job.State)
	snap.Input = job.Input
	if st := job.State.Status; st == jobs.StatusFailed || st == jobs.StatusCanceled {
		rec, found, err := jobs.ReadRetry(ctx, s.streams.Records, id)
		if err != nil {
			return jobs.Snapshot{}, unavailable(err)
		}
		if found {
			snap.RetriedAs = rec.RetriedAs
		}
	}
	return snap, nil
}
