package worker

import (
	"context"
	"fmt"
	"github.com/jobwire/jobwire/internal/natstest"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
)

// runs counts the handler calls of each job id.
type runs struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *runs) jobType(name string) JobType {
	return jobType(name, func(ctx context.Context, job *Job) (any, error) {
		r.mu.Lock()
		if r.n == nil {
			r.n = map[string]int{}
		}
		r.n[job.ID]++
		r.mu.Unlock()
		return "ok", nil
	})
}

func (r *runs) of(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[id]
}

// A deployment changes which types its runners serve, the way a rolling
// update does: pool {demo}, then {demo, other} side by side with it, then
// back to {demo}. Every runner starts, and every job submitted throughout
// runs exactly once.
func TestPoolsChangeTypesSideBySide(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var r runs
	var ids []string
	submit := func(types ...string) {
		for _, typ := range types {
			for range 5 {
				ids = append(ids, e.submit(typ, ""))
			}
		}
	}

	old := e.startRunner(Config{Concurrency: 2}, r.jobType("demo"))
	submit("demo")
	bigger := e.startRunner(Config{Concurrency: 2}, r.jobType("demo"), r.jobType("other"))
	submit("demo", "other") // both pools run, old and new side by side
	if err := old.stop(t); err != nil {
		t.Fatal(err)
	}
	submit("demo", "other")
	e.startRunner(Config{Concurrency: 2}, r.jobType("demo")) // going back
	submit("demo", "other")
	if err := bigger.stop(t); err != nil {
		t.Fatal(err)
	}
	// The "other" jobs nobody serves now wait; a runner for them takes them.
	submit("demo")
	e.startRunner(Config{}, r.jobType("other"))

	for _, id := range ids {
		if end := e.waitEnded(id); end.Status != jobs.StatusSucceeded {
			t.Errorf("job %s ended %s, want succeeded", id, describe(end))
		}
	}
	for _, id := range ids {
		if n := r.of(id); n != 1 {
			t.Errorf("job %s ran %d times, want once", id, n)
		}
	}
	for _, typ := range []string{"demo", "other"} {
		e.consumerName = jobs.ConsumerName(typ)
		e.waitQueueSettled()
	}
}

// A runner whose consumer is deleted under it (nats consumer rm) creates
// it again and takes jobs, without flooding its log.
func TestRunnerRecoversItsDeletedConsumer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var log natstest.LockedBuffer
	var r runs
	e.startRunner(Config{Logger: slog.New(slog.NewTextHandler(&log, nil))}, r.jobType("alpha"))
	if end := e.waitEnded(e.submit("alpha", "")); end.Status != jobs.StatusSucceeded {
		t.Fatalf("first job ended %s", describe(end))
	}
	before := log.Lines()
	// Wait for the runner's fetch to be waiting, so the deletion ends it.
	e.eventually("the runner to wait for jobs", func() (bool, string) {
		ci, err := e.consumer()
		if err != nil {
			return false, err.Error()
		}
		return ci.NumWaiting > 0, fmt.Sprintf("%d waiting", ci.NumWaiting)
	})
	if err := e.js.DeleteConsumer(e.ctx, jobs.Stream, e.consumerName); err != nil {
		t.Fatal(err)
	}
	id := e.submit("alpha", "")
	if end := e.waitEnded(id); end.Status != jobs.StatusSucceeded || r.of(id) != 1 {
		t.Fatalf("job after the deletion ended %s after %d runs, want succeeded once", describe(end), r.of(id))
	}
	// A warning and a note that the consumer was created again; allow a
	// few more, but nothing like a line per retry.
	if n := log.Lines() - before; n > 6 {
		t.Errorf("the runner logged %d lines while its consumer was gone:\n%.3000s", n, log.String())
	}
}

// Failed attempts are retried after the policy's delay: the delay doubles
// per attempt, lies in the upper half of its step (jitter), is what the
// retrying event announces in next_attempt_at, and is what the message
// waits before it is delivered again.
func TestRetriesBackOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var mu sync.Mutex
	var starts []time.Time
	jt := jobType("flaky", func(context.Context, *Job) (any, error) {
		mu.Lock()
		starts = append(starts, time.Now())
		mu.Unlock()
		return nil, fmt.Errorf("not yet")
	})
	const base = 400 * time.Millisecond
	jt.Retry = RetryPolicy{MaxAttempts: 3, BaseDelay: base, MaxDelay: time.Minute}
	e.startRunner(Config{}, jt)
	id := e.submit("flaky", "")
	if end := e.waitEnded(id); end.Status != jobs.StatusFailed || end.Attempt != 3 {
		t.Fatalf("job ended %s, want failed on attempt 3", describe(end))
	}
	retrying := ofKind(e.history(id), jobs.KindRetrying)
	mu.Lock()
	defer mu.Unlock()
	if len(retrying) != 2 || len(starts) != 3 {
		t.Fatalf("%d retrying events and %d attempts, want 2 and 3", len(retrying), len(starts))
	}
	for i, ev := range retrying {
		step := base << i // 400ms, then 800ms
		announced := ev.NextAttemptAt.Sub(ev.Time)
		// The event's time is taken just after the delay was chosen.
		if announced < step/2-50*time.Millisecond || announced > step {
			t.Errorf("retry %d: next_attempt_at is %v after the event, want within [%v, %v]", i+1, announced, step/2, step)
		}
		next := starts[i+1]
		if next.Before(*ev.NextAttemptAt) {
			t.Errorf("retry %d: attempt %d started %v before next_attempt_at: the message was not held back", i+1, i+2, ev.NextAttemptAt.Sub(next))
		}
		if late := next.Sub(*ev.NextAttemptAt); late > 2*time.Second {
			t.Errorf("retry %d: attempt %d started %v after next_attempt_at", i+1, i+2, late)
		}
	}
}

// RetryPolicy.Delay doubles per attempt up to MaxDelay and spreads each
// delay over the upper half of its step.
func TestRetryPolicyDelay(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{BaseDelay: time.Second, MaxDelay: 8 * time.Second}
	for attempt, step := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 8 * time.Second, 50: 8 * time.Second} {
		lo, hi := step, time.Duration(0)
		for range 500 {
			d := p.Delay(attempt)
			if d < step/2 || d > step {
				t.Fatalf("Delay(%d) = %v, want within [%v, %v]", attempt, d, step/2, step)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		// 500 draws spread over the range: not one fixed value.
		if hi-lo < step/4 {
			t.Errorf("Delay(%d) stayed within [%v, %v]: no jitter", attempt, lo, hi)
		}
	}
	if d := (RetryPolicy{}).Delay(1); d < 500*time.Millisecond || d > time.Second {
		t.Errorf("default first delay %v, want within [0.5s, 1s]", d)
	}
}

// Runner pools serve different job types from one stream; a job runs only
// on a runner that serves its type. Pools may overlap (as in a rolling
// update that adds or removes types): a type's jobs then go to any runner
// serving it. (Moved from the gateway's tests; TestRunnerPoolsOnlyTakeTheirTypes
// checks the other side: a runner first in line never takes another
// type's job.)
func TestRunnerPoolsServeTheirOwnTypes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var mu sync.Mutex
	ranBy := map[string]string{}
	named := func(typ, pool string) JobType {
		return jobType(typ, func(ctx context.Context, job *Job) (any, error) {
			mu.Lock()
			ranBy[job.ID] = pool
			mu.Unlock()
			return nil, nil
		})
	}
	e.startRunner(Config{}, named("images", "A"), named("video", "A"))
	e.startRunner(Config{}, named("mail", "B"))
	e.startRunner(Config{}, named("mail", "B"))                       // a second runner of the same pool
	e.startRunner(Config{}, named("mail", "C"), named("images", "C")) // a pool overlapping others

	want := map[string]string{}
	for typ, pools := range map[string]string{"images": "AC", "video": "A", "mail": "BC"} {
		for range 3 {
			want[e.submit(typ, `{}`)] = pools
		}
	}
	for id, pools := range want {
		if end := e.waitEnded(id); end.Status != jobs.StatusSucceeded {
			t.Errorf("job %s ended %s", id, describe(end))
		}
		mu.Lock()
		got := ranBy[id]
		mu.Unlock()
		if got == "" || !strings.Contains(pools, got) {
			t.Errorf("job %s ran in pool %q, want one of %q", id, got, pools)
		}
	}
}
