package jobops

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
)

// cancelWait is how long a cancel waits for the runner holding a job to
// confirm the request before it concludes that no runner holds it.
const cancelWait = 2 * time.Second

// maxCancelReason is the longest reason a cancel may give, in bytes.
const maxCancelReason = 500

// Cancel stops a job wherever it is. A queued job gets its final
// "canceled" state here and never starts (the runner acks it unrun). A
// running job's runner is asked over NATS to cancel the handler; if no
// runner answers, none holds it (it crashed, or the job waits for a retry),
// so Cancel stores the canceled state itself. Every write is fenced on the
// job's last event, so a cancel can never overwrite a newer state.
func (s *Service) Cancel(ctx context.Context, who Caller, id, reason string) (jobs.Snapshot, error) {
	if len(reason) > maxCancelReason {
		return jobs.Snapshot{}, &InvalidArgumentError{"reason is longer than 500 characters"}
	}
	for range 5 {
		job, err := s.ReadJob(ctx, who, id)
		ev, lastSeq := job.State, job.Seq
		switch {
		case err != nil:
			return jobs.Snapshot{}, err
		case ev.Status == jobs.StatusCanceled:
			return jobs.SnapshotOf(ev), nil // cancelling twice is harmless
		case ev.Status.Terminal():
			return jobs.Snapshot{}, &AlreadyFinishedError{jobs.SnapshotOf(ev)}
		}
		req := jobs.CancelRequest{By: canceledBy(who, job.Owner.Owner), Reason: reason}
		if ev.Status == jobs.StatusRunning {
			payload, _ := json.Marshal(req)
			rctx, cancelReq := context.WithTimeout(ctx, cancelWait)
			reply, err := s.nc.RequestWithContext(rctx, jobs.CancelSubject(id), payload)
			cancelReq()
			var ans jobs.CancelReply
			if err == nil && json.Unmarshal(reply.Data, &ans) == nil && ans.Accepted {
				return jobs.SnapshotOf(ev), nil // the runner stores "canceled" as its handler returns
			}
			if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, nats.ErrTimeout) {
				return jobs.Snapshot{}, unavailable(err)
			}
		}
		done, err := s.endHere(ctx, ev, lastSeq, req)
		if err == nil {
			return jobs.SnapshotOf(done), nil
		} else if !jobs.IsWrongLastSequence(err) {
			return jobs.Snapshot{}, unavailable(err)
		}
		// The job moved on meanwhile (a runner started it): look again.
	}
	return jobs.Snapshot{}, ErrBusy
}

// endHere stores the "canceled" end of a job that no runner holds (last,
// its last event, at stream sequence lastSeq), fenced on it, and its end
// record. A write that lost the fence returns that error: the job moved on.
func (s *Service) endHere(ctx context.Context, last jobs.Event, lastSeq uint64, req jobs.CancelRequest) (jobs.Event, error) {
	now := time.Now()
	done := last.Next(jobs.KindCanceled, now)
	done.Status, done.EndedAt, done.NextAttemptAt, done.Error = jobs.StatusCanceled, &now, nil, jobs.CanceledError(req)
	seq, err := jobs.PublishEvent(ctx, s.js, done, lastSeq)
	if err != nil {
		return jobs.Event{}, err
	}
	if err := jobs.RecordEnd(ctx, s.js, done, seq); err != nil {
		s.log.Warn("cannot record the job's end", "job_id", done.JobID, "type", done.Type, "attempt", done.Attempt, "err", err)
	}
	return done, nil
}

// canceledBy names who cancels a job of owner, as the role users may see:
// never the owner id itself.
func canceledBy(who Caller, owner string) string {
	if who.Owner == owner {
		return jobs.CanceledByOwner
	}
	return jobs.CanceledByAdmin // CanSee let who in, so who is an admin
}
