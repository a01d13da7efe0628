package worker

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/natstest"
	"github.com/jobwire/jobwire/shared/jobs"
)

// A write that was stored but whose answer was lost is recognised on the
// retry: the event is stored once, not twice, and the writer carries on
// from it; a lost answer to the final event is a success, not "the job
// ended elsewhere".
func TestWriteWithLostAnswerIsStoredOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := jobs.NewID(time.Now())
	e.submitID(id, "demo", "") // queued event (and a request no runner takes)
	lossy := &natstest.LostAnswers{Publisher: e.js}
	w := &writer{js: lossy, events: e.events, ev: jobs.Event{JobID: id}}
	if err := w.reload(e.ctx); err != nil {
		t.Fatal(err)
	}

	lossy.Lose.Store(1)
	if err := w.emit(e.ctx, jobs.KindStarted, func(ev *jobs.Event) { ev.Status, ev.Attempt = jobs.StatusRunning, 1 }); err != nil {
		t.Fatalf("started, answer lost: %v", err)
	}
	if err := w.emit(e.ctx, jobs.KindProgress, func(ev *jobs.Event) { ev.Current, ev.Total = 1, 2 }); err != nil {
		t.Fatalf("progress after it: %v", err)
	}
	// Two answers lost in a row: the first write landed, the second was
	// refused by the fence (its answer lost as well, here as a timeout).
	lossy.Lose.Store(1)
	lossy.FailNext.Store(1)
	if err := w.emit(e.ctx, jobs.KindLog, func(ev *jobs.Event) { ev.Log = "line" }); err != nil {
		t.Fatalf("log, two answers lost: %v", err)
	}
	lossy.Lose.Store(1)
	err := w.emit(e.ctx, jobs.KindSucceeded, func(ev *jobs.Event) { ev.Status = jobs.StatusSucceeded })
	if err != nil {
		t.Fatalf("succeeded, answer lost: %v (ended elsewhere: %v)", err, errors.Is(err, errJobEnded))
	}

	evs := e.history(id)
	checkSeqs(t, id, evs)
	var kinds []jobs.Kind
	for _, ev := range evs {
		kinds = append(kinds, ev.Kind)
	}
	want := []jobs.Kind{jobs.KindQueued, jobs.KindStarted, jobs.KindProgress, jobs.KindLog, jobs.KindSucceeded}
	if !slices.Equal(kinds, want) {
		t.Fatalf("history %v, want %v:\n%s", kinds, want, describeAll(evs))
	}
}
