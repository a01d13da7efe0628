package worker

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
)

// (The retry tests that ran through the gateway and had a twin here are
// gone: TestRetriesRunOut and TestPermanentErrorFailsAtOnce are the
// "plain" and "permanent" cases of TestHandlerFailuresEndTheJob,
// TestPanicIsAnErrorAndTheRunnerLivesOn its "panics" case and the job
// after it, TestPoisonMessagesNeverLoop is TestPoisonMessagesAreTerminated.)

var fastRetry = RetryPolicy{MaxAttempts: 3, BaseDelay: 20 * time.Millisecond, MaxDelay: 50 * time.Millisecond}

// failingType fails its first failures attempts with err, then succeeds.
func failingType(name string, failures int32, err error, calls *atomic.Int32) JobType {
	return JobType{
		Name: name, Description: "fails, then succeeds", Retry: fastRetry,
		Handler: func(ctx context.Context, job *Job) (any, error) {
			if calls.Add(1) <= failures {
				return nil, err
			}
			return "ok", nil
		},
	}
}

func TestRetriesWithBackoffThenSucceeds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var calls atomic.Int32
	e.startRunner(Config{}, failingType("flaky", 2, errors.New("disk hiccup"), &calls))
	id := e.submit("flaky", `{}`)
	done := e.waitEnded(id)
	if done.Status != jobs.StatusSucceeded || done.Attempt != 3 || calls.Load() != 3 || string(done.Result) != `"ok"` || done.Error != nil || done.NextAttemptAt != nil {
		t.Fatalf("final = %s after %d calls", describe(done), calls.Load())
	}
	evs := e.history(id)
	checkSeqs(t, id, evs)
	retries := ofKind(evs, jobs.KindRetrying)
	if len(retries) != 2 {
		t.Fatalf("want 2 retrying events, history:\n%s", describeAll(evs))
	}
	for i, ev := range retries {
		if ev.Attempt != i+1 || ev.Error == nil || ev.Error.Message != "disk hiccup" || ev.NextAttemptAt == nil || !ev.NextAttemptAt.After(ev.Time) {
			t.Errorf("retrying event %d = %s", i, describe(ev))
		}
	}
}

func TestTimeoutCancelsTheHandler(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var stopped atomic.Int32
	slow := func(name string, retry bool) JobType {
		return JobType{
			Name: name, Description: "never ends by itself", Timeout: 100 * time.Millisecond,
			Retry: RetryPolicy{MaxAttempts: 2, BaseDelay: 10 * time.Millisecond, RetryTimeouts: retry},
			Handler: func(ctx context.Context, job *Job) (any, error) {
				<-ctx.Done()
				stopped.Add(1)
				return nil, ctx.Err()
			},
		}
	}
	e.startRunner(Config{}, slow("slow", false), slow("slow-retried", true))
	a := e.submit("slow", `{}`)
	b := e.submit("slow-retried", `{}`)
	da, db := e.waitEnded(a), e.waitEnded(b)
	if da.Status != jobs.StatusFailed || da.Error == nil || da.Error.Code != "timeout" || da.Attempt != 1 {
		t.Errorf("slow = %s", describe(da))
	}
	if db.Status != jobs.StatusFailed || db.Error == nil || db.Error.Code != "timeout" || db.Attempt != 2 {
		t.Errorf("slow-retried = %s", describe(db))
	}
	if stopped.Load() != 3 {
		t.Errorf("handlers saw their context end %d times, want 3", stopped.Load())
	}
}

func TestProgressIsPacedButTheFinalValueIsKept(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const updates = 2000
	e.startRunner(Config{}, JobType{
		Name: "chatty", Description: "reports progress very often",
		Handler: func(ctx context.Context, job *Job) (any, error) {
			for i := 1; i <= updates; i++ {
				job.Progress.Count(int64(i), updates)
				job.Progress.Message(fmt.Sprintf("update %d", i))
				if i%100 == 0 {
					time.Sleep(10 * time.Millisecond)
				}
			}
			return nil, nil
		},
	})
	id := e.submit("chatty", `{}`)
	end := e.waitEnded(id)
	if end.Status != jobs.StatusSucceeded {
		t.Fatalf("job ended %s", describe(end))
	}
	evs := e.history(id)
	checkSeqs(t, id, evs)
	progress := ofKind(evs, jobs.KindProgress)
	// About 0.2 s of updates at 10 events/s at most: a handful, not 2000.
	if len(progress) == 0 || len(progress) > 50 {
		t.Fatalf("%d progress events for %d updates", len(progress), updates)
	}
	// The last value reported is stored: on the final event, which follows
	// the handler's return at once and carries the same snapshot.
	if want := fmt.Sprintf("update %d", updates); end.Message != want || evs[len(evs)-1].Message != want {
		t.Fatalf("final message %q (stored %q), want %q", end.Message, evs[len(evs)-1].Message, want)
	}
}
