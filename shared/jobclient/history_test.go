package jobclient_test

import (
	"github.com/jobwire/jobwire/internal/natstest"
	"testing"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
)

// appendEvent stores the next event of job id as its runner would, with
// the given kind and status.
func appendEvent(t *testing.T, s *system, id string, kind jobs.Kind, status jobs.Status) {
	t.Helper()
	ctx := testContext(t, 10*time.Second)
	events, err := s.js.Stream(ctx, jobs.Stream)
	if err != nil {
		t.Fatal(err)
	}
	last, streamSeq, err := jobs.LastEvent(ctx, events, id)
	if err != nil {
		t.Fatal(err)
	}
	ev := last.Next(kind, time.Now())
	ev.Status = status
	if _, err := jobs.PublishEvent(ctx, s.js, ev, streamSeq); err != nil {
		t.Fatal(err)
	}
}

// submitEnded submits a job of type "x" and stores its start and end.
func submitEnded(t *testing.T, s *system) string {
	t.Helper()
	registerType(t, s, jobs.TypeInfo{Type: "x"})
	queued, err := s.client.Submit(testContext(t, 10*time.Second), "x", nil)
	if err != nil {
		t.Fatal(err)
	}
	appendEvent(t, s, queued.JobID, jobs.KindStarted, jobs.StatusRunning)
	appendEvent(t, s, queued.JobID, jobs.KindSucceeded, jobs.StatusSucceeded)
	return queued.JobID
}

// 5,000 watches in a row leave no consumer behind on the server (none is
// ever created), and the last one still reads the whole history.
func TestManyWatchesLeaveNoConsumers(t *testing.T) {
	t.Parallel()
	s := startBare(t)
	id := submitEnded(t, s)
	ctx := testContext(t, 60*time.Second)
	events, err := s.js.Stream(ctx, jobs.Stream)
	if err != nil {
		t.Fatal(err)
	}
	consumers := func() int { return natstest.Consumers(t, events) }
	before := consumers()
	for i := range 5000 {
		var got []jobs.Event
		for ev, err := range s.client.Watch(ctx, id, 0) {
			if err != nil {
				t.Fatalf("watch %d: %v after %v", i, err, seqs(got))
			}
			if i == 0 && len(got) == 0 {
				if c := consumers(); c != before {
					t.Fatalf("%d consumers while watching, %d before", c, before)
				}
			}
			got = append(got, ev)
		}
		if i == 0 || i == 4999 {
			checkRun(t, got, 1, 3)
		}
	}
	if c := consumers(); c != before {
		t.Fatalf("%d consumers after 5000 watches, %d before", c, before)
	}
}

// A job's first final event is its end: events stored after it (as a
// compromised runner credential could) are never yielded.
func TestWatchEndsAtFirstFinalEvent(t *testing.T) {
	t.Parallel()
	s := startBare(t)
	id := submitEnded(t, s) // seqs 1..3, 3 succeeded
	appendEvent(t, s, id, jobs.KindProgress, jobs.StatusRunning)
	appendEvent(t, s, id, jobs.KindFailed, jobs.StatusFailed)
	ctx := testContext(t, 10*time.Second)

	got, err := collect(t, s.client.Watch(ctx, id, 0))
	if err != nil {
		t.Fatal(err)
	}
	checkRun(t, got, 1, 3)
	for _, after := range []uint64{2, 3, 4} {
		got, err := collect(t, s.client.Watch(ctx, id, after))
		if err != nil {
			t.Fatalf("after %d: %v", after, err)
		}
		checkRun(t, got, after+1, 3)
	}
}
