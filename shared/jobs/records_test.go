package jobs_test

import (
	"errors"
	"testing"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
)

// TestStateEndsAtTheFirstFinalEvent: after a job's end is recorded,
// events stored after it (another owner, a second final event) change
// neither its state nor its owner, and neither record can be written again.
func TestStateEndsAtTheFirstFinalEvent(t *testing.T) {
	t.Parallel()
	ctx, _, js, streams := withTopology(t)
	req := jobs.Request{ID: jobs.NewID(time.Now()), Type: "demo", CreatedAt: time.Now(), Owner: "user:alice"}
	queued, err := jobs.Enqueue(ctx, js, req)
	if err != nil {
		t.Fatal(err)
	}
	store := func(ev jobs.Event, after uint64) uint64 {
		t.Helper()
		seq, err := jobs.PublishEvent(ctx, js, ev, after)
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	_, queuedSeq, _ := jobs.LastEvent(ctx, streams.Events, req.ID)
	done := queued.Next(jobs.KindSucceeded, time.Now())
	done.Status = jobs.StatusSucceeded
	if _, err := jobs.Enqueue(ctx, js, jobs.Request{ID: req.ID, Type: "demo", CreatedAt: time.Now(), Owner: "user:mallory"}); !errors.Is(err, jobs.ErrDuplicateID) {
		t.Errorf("a second request for the job: %v, want ErrDuplicateID", err)
	}
	doneSeq := store(done, queuedSeq)
	if err := jobs.RecordEnd(ctx, js, done, doneSeq); err != nil {
		t.Fatal(err)
	}
	forged := done.Next(jobs.KindFailed, time.Now())
	forged.Status, forged.Owner = jobs.StatusFailed, "user:mallory"
	store(forged, doneSeq)

	job, err := jobs.ReadJob(ctx, streams.Events, streams.Records, req.ID)
	if end, found, err := jobs.ReadEnd(ctx, streams.Records, req.ID); err != nil || !found || end.Owner != "user:alice" || end.Seq != doneSeq {
		t.Errorf("end record %+v, %v, %v; want user:alice's, at %d", end, found, err, doneSeq)
	}
	if err != nil || job.Owner.Owner != "user:alice" || job.Owner.Type != "demo" || job.Seq != doneSeq || job.State.Status != jobs.StatusSucceeded {
		t.Fatalf("ReadJob = owner %+v, %s at %d, %v; want user:alice, succeeded at %d", job.Owner, job.State.Status, job.Seq, err, doneSeq)
	}
	if err := jobs.RecordEnd(ctx, js, forged, doneSeq+1); !errors.Is(err, jobs.ErrRecorded) {
		t.Errorf("second RecordEnd: %v, want ErrRecorded", err)
	}
	if _, err := jobs.ReadJob(ctx, streams.Events, streams.Records, jobs.NewID(time.Now())); !errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("ReadJob of an unknown job: %v, want ErrNotFound", err)
	}
}

// TestOwnerOutlivesTheRequest: the request is a job's oldest message, so
// it ages out before the job's last events; the job still belongs to its
// owner (by its end record) until those age out too.
func TestOwnerOutlivesTheRequest(t *testing.T) {
	t.Parallel()
	ctx, _, js, streams := withTopology(t)
	req := jobs.Request{ID: jobs.NewID(time.Now()), Type: "demo", CreatedAt: time.Now(), Owner: "user:alice"}
	queued, err := jobs.Enqueue(ctx, js, req)
	if err != nil {
		t.Fatal(err)
	}
	reqMsg, err := streams.Events.GetLastMsgForSubject(ctx, jobs.QueueSubject(req.Type, req.ID))
	if err != nil {
		t.Fatal(err)
	}
	done := queued.Next(jobs.KindCanceled, time.Now())
	done.Status = jobs.StatusCanceled
	seq, err := jobs.PublishEvent(ctx, js, done, reqMsg.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if err := jobs.RecordEnd(ctx, js, done, seq); err != nil {
		t.Fatal(err)
	}
	if err := streams.Events.DeleteMsg(ctx, reqMsg.Sequence); err != nil { // as MaxAge would
		t.Fatal(err)
	}
	job, err := jobs.ReadJob(ctx, streams.Events, streams.Records, req.ID)
	if err != nil || job.Owner.Owner != "user:alice" || job.Owner.Type != "demo" || job.State.Status != jobs.StatusCanceled {
		t.Fatalf("ReadJob after the request aged out = owner %+v, %s, %v; want user:alice's canceled demo job", job.Owner, job.State.Status, err)
	}
}
