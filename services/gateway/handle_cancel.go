package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
)

// cancelWait is how long the gateway waits for the runner holding a job to
// confirm a cancel request before it concludes that no runner holds it.
const cancelWait = 2 * time.Second

func handleCancel(g *gateway) http.HandlerFunc {
	type request struct {
		Reason string `json:"reason"`
	}
	return func(w http.ResponseWriter, r *http.Request) {
		var body request
		if r.ContentLength != 0 {
			if err := decode(w, r, g.cfg.MaxBodyBytes, &body); err != nil {
				writeError(w, err)
				return
			}
		}
		if len(body.Reason) > 500 {
			writeError(w, errorf(http.StatusBadRequest, "bad_request", "reason is longer than 500 characters"))
			return
		}
		p := principalFrom(r.Context())
		snap, err := g.cancel(r.Context(), p, chi.URLParam(r, "id"), body.Reason)
		var finished *finishedError
		if errors.As(err, &finished) {
			encode(w, http.StatusConflict, map[string]any{
				"error": errorf(http.StatusConflict, "already_finished", "the job has already %s", finished.job.Status),
				"job":   finished.job,
			})
			return
		}
		if err != nil {
			writeError(w, err)
			return
		}
		encode(w, http.StatusAccepted, snap)
	}
}

// finishedError: the job ended before it could be canceled.
type finishedError struct{ job jobs.Snapshot }

func (e *finishedError) Error() string { return "job already " + string(e.job.Status) }

// cancel stops a job wherever it is. A queued job gets its final
// "canceled" state here and never starts (the runner acks it unrun). A
// running job's runner is asked over NATS to cancel the handler; if no
// runner answers, none holds it (it crashed, or the job waits for a retry),
// so the gateway stores the canceled state itself. Every write is fenced on
// the job's last event, so a cancel can never overwrite a newer state.
func (g *gateway) cancel(ctx context.Context, p principal, id, reason string) (jobs.Snapshot, error) {
	for range 5 {
		job, err := g.readJob(ctx, p, id)
		ev, lastSeq := job.State, job.Seq
		switch {
		case err != nil:
			return jobs.Snapshot{}, err
		case ev.Status == jobs.StatusCanceled:
			return jobs.SnapshotOf(ev), nil // cancelling twice is harmless
		case ev.Status.Terminal():
			return jobs.Snapshot{}, &finishedError{jobs.SnapshotOf(ev)}
		}
		req := jobs.CancelRequest{By: canceledBy(p, job.Owner.Owner), Reason: reason}
		if ev.Status == jobs.StatusRunning {
			payload, _ := json.Marshal(req)
			rctx, cancelReq := context.WithTimeout(ctx, cancelWait)
			reply, err := g.nc.RequestWithContext(rctx, jobs.CancelSubject(id), payload)
			cancelReq()
			var ans jobs.CancelReply
			if err == nil && json.Unmarshal(reply.Data, &ans) == nil && ans.Accepted {
				return jobs.SnapshotOf(ev), nil // the runner stores "canceled" as its handler returns
			}
			if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, nats.ErrTimeout) {
				return jobs.Snapshot{}, errUnavailable(err)
			}
		}
		now := time.Now()
		done := ev.Next(jobs.KindCanceled, now)
		done.Status, done.EndedAt, done.NextAttemptAt, done.Error = jobs.StatusCanceled, &now, nil, jobs.CanceledError(req)
		if seq, err := jobs.PublishEvent(ctx, g.js, done, lastSeq); err == nil {
			if err := jobs.RecordEnd(ctx, g.js, done, seq); err != nil {
				g.log.Warn("cannot record the job's end", "job_id", id, "err", err)
			}
			return jobs.SnapshotOf(done), nil
		} else if !jobs.IsWrongLastSequence(err) {
			return jobs.Snapshot{}, errUnavailable(err)
		}
		// The job moved on meanwhile (a runner started it): look again.
	}
	return jobs.Snapshot{}, errorf(http.StatusConflict, "busy", "the job keeps changing; try again")
}

// canceledBy names who cancels a job of owner, as the role users may see:
// never the owner id itself.
func canceledBy(p principal, owner string) string {
	if p.Owner == owner {
		return jobs.CanceledByOwner
	}
	return jobs.CanceledByAdmin // canSee let p in, so p is an admin
}
