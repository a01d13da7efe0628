package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jobwire/jobwire/services/runner/worker"
	"github.com/jobwire/jobwire/shared/jobs"
)

var fastRetry = worker.RetryPolicy{MaxAttempts: 3, BaseDelay: 20 * time.Millisecond, MaxDelay: 50 * time.Millisecond}

// failingType fails its first failures attempts with err, then succeeds.
func failingType(name string, failures int32, err error, calls *atomic.Int32) worker.JobType {
	return worker.JobType{
		Name: name, Description: "fails, then succeeds", Retry: fastRetry,
		Handler: func(ctx context.Context, job *worker.Job) (any, error) {
			if calls.Add(1) <= failures {
				return nil, err
			}
			return "ok", nil
		},
	}
}

func TestRetriesWithBackoffThenSucceeds(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	sys := startSystem(t, withTypes(failingType("flaky", 2, errors.New("disk hiccup"), &calls)))
	snap := sys.submit(t, "flaky", `{}`)
	done := sys.waitStatus(t, snap.ID, jobs.StatusSucceeded, 20*time.Second)
	if done.Attempt != 3 || calls.Load() != 3 || string(done.Result) != `"ok"` || done.Error != nil || done.NextAttemptAt != nil {
		t.Fatalf("final = %+v after %d calls", done, calls.Load())
	}
	evs := sys.history(t, snap.ID)
	checkSeqs(t, evs)
	var retries []jobs.Event
	for _, e := range evs {
		if e.Kind == jobs.KindRetrying {
			retries = append(retries, e)
		}
	}
	if len(retries) != 2 {
		t.Fatalf("want 2 retrying events, history %v", kinds(evs))
	}
	for i, e := range retries {
		if e.Attempt != i+1 || e.Error == nil || e.Error.Message != "disk hiccup" || e.NextAttemptAt == nil || !e.NextAttemptAt.After(e.Time) {
			t.Errorf("retrying event %d = %+v", i, e)
		}
	}
}

func TestRetriesRunOut(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	sys := startSystem(t, withTypes(failingType("broken", 100, errors.New("still broken"), &calls)))
	snap := sys.submit(t, "broken", `{}`)
	done := sys.waitStatus(t, snap.ID, jobs.StatusFailed, 20*time.Second)
	if done.Attempt != 3 || calls.Load() != 3 || done.Error == nil || done.Error.Code != "handler_error" || done.Error.Message != "still broken" {
		t.Fatalf("final = %+v after %d calls", done, calls.Load())
	}
	checkSeqs(t, sys.history(t, snap.ID))
}

func TestPermanentErrorFailsAtOnce(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	sys := startSystem(t, withTypes(failingType("picky", 100, worker.Permanent("bad_input", "no"), &calls)))
	snap := sys.submit(t, "picky", `{}`)
	done := sys.waitStatus(t, snap.ID, jobs.StatusFailed, 20*time.Second)
	if done.Attempt != 1 || calls.Load() != 1 || done.Error.Code != "bad_input" {
		t.Fatalf("final = %+v after %d calls", done, calls.Load())
	}
}

func TestPanicIsAnErrorAndTheRunnerLivesOn(t *testing.T) {
	t.Parallel()
	panicky := worker.JobType{
		Name: "panicky", Description: "panics", Retry: worker.RetryPolicy{MaxAttempts: 2, BaseDelay: 10 * time.Millisecond},
		Handler: func(ctx context.Context, job *worker.Job) (any, error) { panic("boom") },
	}
	sys := startSystem(t, withTypes(panicky))
	snap := sys.submit(t, "panicky", `{}`)
	done := sys.waitStatus(t, snap.ID, jobs.StatusFailed, 20*time.Second)
	if done.Attempt != 2 || done.Error.Code != "panic" || !strings.Contains(done.Error.Message, "boom") || strings.Contains(done.Error.Message, "goroutine") {
		t.Fatalf("final = %+v", done)
	}
	next := sys.submit(t, "demo", `{"steps":1,"step_ms":0}`)
	sys.waitStatus(t, next.ID, jobs.StatusSucceeded, 20*time.Second)
}

func TestTimeoutCancelsTheHandler(t *testing.T) {
	t.Parallel()
	var stopped atomic.Int32
	slow := func(name string, retry bool) worker.JobType {
		return worker.JobType{
			Name: name, Description: "never ends by itself", Timeout: 100 * time.Millisecond,
			Retry: worker.RetryPolicy{MaxAttempts: 2, BaseDelay: 10 * time.Millisecond, RetryTimeouts: retry},
			Handler: func(ctx context.Context, job *worker.Job) (any, error) {
				<-ctx.Done()
				stopped.Add(1)
				return nil, ctx.Err()
			},
		}
	}
	sys := startSystem(t, withTypes(slow("slow", false), slow("slow-retried", true)))
	a := sys.submit(t, "slow", `{}`)
	b := sys.submit(t, "slow-retried", `{}`)
	da := sys.waitStatus(t, a.ID, jobs.StatusFailed, 20*time.Second)
	db := sys.waitStatus(t, b.ID, jobs.StatusFailed, 20*time.Second)
	if da.Error.Code != "timeout" || da.Attempt != 1 {
		t.Errorf("slow = %+v", da)
	}
	if db.Error.Code != "timeout" || db.Attempt != 2 {
		t.Errorf("slow-retried = %+v", db)
	}
	if stopped.Load() != 3 {
		t.Errorf("handlers saw their context end %d times, want 3", stopped.Load())
	}
}

func TestPoisonMessagesNeverLoop(t *testing.T) {
	t.Parallel()
	sys := startSystem(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, data := range []string{`not json`, `{"id":"a.b","type":"demo"}`, `{"type":"demo"}`} {
		if _, err := sys.GW.js.Publish(ctx, jobs.QueueSubject("demo"), []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	id := jobs.NewID(time.Now())
	req, _ := json.Marshal(jobs.Request{ID: id, Type: "nosuch", CreatedAt: time.Now()})
	if _, err := sys.GW.js.Publish(ctx, jobs.QueueSubject("demo"), req); err != nil {
		t.Fatal(err)
	}
	// Published straight to NATS, the job has no owner: only admins see it.
	done := sys.as(token(t, "ops", true, time.Hour)).waitStatus(t, id, jobs.StatusFailed, 20*time.Second)
	if done.Error.Code != "unknown_type" {
		t.Fatalf("unknown type job = %+v", done)
	}
	cons, err := sys.GW.js.Consumer(ctx, jobs.QueueStream, jobs.ConsumerName("demo"))
	if err != nil {
		t.Fatal(err)
	}
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending == 0 && info.NumPending == 0 {
			if info.NumRedelivered != 0 {
				t.Fatalf("poison messages were redelivered: %+v", info)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("poison messages still pending: %+v", info)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if q, _ := streamCounts(t, sys); q != 0 {
		t.Fatalf("%d poison messages left in the queue", q)
	}
}

func TestProgressIsPacedButTheFinalValueIsKept(t *testing.T) {
	t.Parallel()
	const updates = 2000
	chatty := worker.JobType{
		Name: "chatty", Description: "reports progress very often",
		Handler: func(ctx context.Context, job *worker.Job) (any, error) {
			for i := 1; i <= updates; i++ {
				job.Progress.Count(int64(i), updates)
				job.Progress.Message(fmt.Sprintf("update %d", i))
				if i%100 == 0 {
					time.Sleep(10 * time.Millisecond)
				}
			}
			return nil, nil
		},
	}
	sys := startSystem(t, withTypes(chatty))
	snap := sys.submit(t, "chatty", `{}`)
	end := sys.waitStatus(t, snap.ID, jobs.StatusSucceeded, 20*time.Second)
	evs := sys.history(t, snap.ID)
	checkSeqs(t, evs)
	var progress []jobs.Event
	for _, e := range evs {
		if e.Kind == jobs.KindProgress {
			progress = append(progress, e)
		}
	}
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
