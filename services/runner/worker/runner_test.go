package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/metrics/metricstest"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go/jetstream"
)

// 1. Registration is checked before anything is created.
func TestNewRejectsBadJobTypes(t *testing.T) {
	t.Parallel()
	e := newBareEnv(t)

	for _, tc := range []struct {
		name  string
		types []JobType
		want  []string // substrings of the error
		is    error
	}{
		{"duplicate", []JobType{jobType("alpha", ok), jobType("beta", ok), jobType("alpha", ok)}, []string{"alpha", "registered twice"}, nil},
		{"dot in name", []JobType{jobType("a.b", ok)}, []string{"job type"}, jobs.ErrInvalidID},
		{"wildcard name", []JobType{jobType("*", ok)}, []string{"job type"}, jobs.ErrInvalidID},
		{"empty name", []JobType{jobType("", ok)}, []string{"job type"}, jobs.ErrInvalidID},
		{"nil handler", []JobType{{Name: "lazy"}}, []string{"lazy", "no handler"}, nil},
		{"no types", nil, []string{"no job types"}, nil},
		{"every problem at once", []JobType{jobType("a.b", ok), {Name: "lazy"}, jobType("x", ok), jobType("x", ok)}, []string{"found '.'", "lazy: no handler", "x: registered twice"}, jobs.ErrInvalidID},
		{"the error names the bad type", []JobType{jobType("fine", ok), jobType("re.size", ok)}, []string{`re.size`}, jobs.ErrInvalidID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "the error names the bad type" {
				// With many types (an exec config), "found '.'" alone
				// does not say which one is wrong.
			}
			r, err := New(e.ctx, e.nc, Config{}, tc.types...)
			if err == nil {
				t.Fatalf("New succeeded (%v), want an error", r)
			}
			if r != nil {
				t.Errorf("New returned a runner with its error %v", err)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q is not %v", err, tc.is)
			}
		})
	}

	// A refused registration created nothing on the server.
	if _, err := e.js.Stream(e.ctx, jobs.Stream); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("after refused registrations, stream %s: err = %v, want ErrStreamNotFound", jobs.Stream, err)
	}

	// The same server accepts a good registration: streams, consumer and
	// the type's record appear (so the check above could have failed).
	if _, err := New(e.ctx, e.nc, Config{}, jobType("alpha", ok)); err != nil {
		t.Fatalf("New with a good type: %v", err)
	}
	if _, err := e.js.Consumer(e.ctx, jobs.Stream, jobs.ConsumerName("alpha")); err != nil {
		t.Errorf("consumer after a good New: %v", err)
	}
	kv, err := e.js.KeyValue(e.ctx, jobs.TypesBucket)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := kv.Get(e.ctx, "alpha")
	if err != nil {
		t.Fatalf("type alpha not registered: %v", err)
	}
	var info jobs.TypeInfo
	if err := json.Unmarshal(entry.Value(), &info); err != nil || info.Type != "alpha" {
		t.Errorf("registered type info = %s (%v), want type alpha", entry.Value(), err)
	}
}

// 2. A job's whole history: contiguous seqs, queued → started → progress
// and log events while running → succeeded with the handler's result.
func TestJobRunsToSucceededWithFullHistory(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	gate := make(chan struct{})
	var c calls
	e.startRunner(Config{}, jobType("report", func(ctx context.Context, job *Job) (any, error) {
		c.add(job)
		job.Progress.Stage("warming up")
		job.Progress.Count(1, 4)
		job.Progress.Message("step 1 of 4")
		select { // let the test see the job in the middle
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		job.Progress.Log("first line")
		job.Progress.Stage("counting")
		for i := int64(2); i <= 3; i++ {
			job.Progress.Count(i, 4)
			job.Progress.Message(fmt.Sprintf("step %d of 4", i))
			job.Progress.Log(fmt.Sprintf("line after step %d", i))
		}
		// It returns without reporting step 4: success means 100%.
		return map[string]any{"answer": 42, "job": job.ID}, nil
	}))

	id := e.submit("report", `{"size":3}`)

	mid := e.waitEvent(id, "the job to be seen running at step 1", func(ev jobs.Event) bool {
		return ev.Current == 1 && ev.Message == "step 1 of 4" && ev.Stage == "warming up"
	})
	if mid.Status != jobs.StatusRunning || mid.Attempt != 1 || mid.Total != 4 || mid.Percent == nil || *mid.Percent != 25 {
		t.Errorf("state in the middle = %s, want running attempt 1 at 1/4 25%%", describe(mid))
	}
	close(gate)

	end := e.waitEnded(id)
	if end.Status != jobs.StatusSucceeded || end.Kind != jobs.KindSucceeded {
		t.Fatalf("job ended %s, want succeeded", describe(end))
	}
	if end.Percent == nil || *end.Percent != 100 || end.Current != 4 || end.Total != 4 {
		t.Errorf("final progress = %s, want 100%% 4/4 although the handler last reported 3/4", describe(end))
	}
	if end.Stage != "counting" || end.Message != "step 3 of 4" {
		t.Errorf("final stage/message = %q/%q, want the last ones reported", end.Stage, end.Message)
	}
	var result map[string]any
	if err := json.Unmarshal(end.Result, &result); err != nil {
		t.Fatalf("result %s: %v", end.Result, err)
	}
	if want := map[string]any{"answer": 42.0, "job": id}; !reflect.DeepEqual(result, want) {
		t.Errorf("result = %v, want %v", result, want)
	}
	if end.Error != nil || end.Attempt != 1 || end.Type != "report" || end.StartedAt == nil || end.EndedAt == nil || end.CreatedAt == nil {
		t.Errorf("final event = %+v, want no error, attempt 1, type report, created/started/ended times", end)
	}

	evs := e.history(id)
	checkSeqs(t, id, evs)
	if len(evs) < 4 {
		t.Fatalf("history has %d events, want at least queued, started, progress, succeeded:\n%s", len(evs), describeAll(evs))
	}
	if first := evs[0]; first.Kind != jobs.KindQueued || first.Status != jobs.StatusQueued {
		t.Errorf("event 1 = %s, want queued", describe(first))
	}
	if second := evs[1]; second.Kind != jobs.KindStarted || second.Status != jobs.StatusRunning || second.Attempt != 1 || second.StartedAt == nil {
		t.Errorf("event 2 = %s, want started/running attempt 1", describe(second))
	}
	if last := evs[len(evs)-1]; last.Seq != end.Seq {
		t.Errorf("history ends at seq %d, the current state is seq %d", last.Seq, end.Seq)
	}
	var logs []string
	progress := 0
	prevCurrent := int64(0)
	for _, ev := range evs[2 : len(evs)-1] {
		switch ev.Kind {
		case jobs.KindLog:
			logs = append(logs, ev.Log)
		case jobs.KindProgress:
			progress++
			if ev.Log != "" {
				t.Errorf("progress event carries log %q", ev.Log)
			}
		default:
			t.Errorf("unexpected event in the middle: %s", describe(ev))
		}
		if ev.Status != jobs.StatusRunning || ev.Attempt != 1 {
			t.Errorf("event in the middle is %s, want running attempt 1", describe(ev))
		}
		if ev.Current < prevCurrent {
			t.Errorf("progress went backwards (%d after %d): reordered?\n%s", ev.Current, prevCurrent, describeAll(evs))
		}
		prevCurrent = ev.Current
	}
	if progress == 0 {
		t.Errorf("no progress event in the history:\n%s", describeAll(evs))
	}
	if want := []string{"first line", "line after step 2", "line after step 3"}; !slices.Equal(logs, want) {
		t.Errorf("log events = %q, want %q", logs, want)
	}
	if got := c.seen(); !slices.Equal(got, []int{1}) {
		t.Errorf("handler calls saw attempts %v, want [1]", got)
	}
}

// Log lines beyond MaxLogLines are counted, not stored, and the count is
// stored at the end.
func TestLogLinesOverTheLimitAreCounted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startRunner(Config{MaxLogLines: 2}, jobType("chatty", func(ctx context.Context, job *Job) (any, error) {
		for i := 1; i <= 5; i++ {
			job.Progress.Log(fmt.Sprintf("line %d", i))
		}
		return nil, nil
	}))
	id := e.submit("chatty", "")
	if end := e.waitEnded(id); end.Status != jobs.StatusSucceeded {
		t.Fatalf("job ended %s", describe(end))
	}
	var logs []string
	for _, ev := range e.history(id) {
		if ev.Kind == jobs.KindLog {
			logs = append(logs, ev.Log)
		}
	}
	want := []string{"line 1", "line 2", "(3 log lines dropped: over the limit of 2 per job)"}
	if !slices.Equal(logs, want) {
		t.Errorf("log events = %q, want %q", logs, want)
	}
}

// 3a. The final event is stored before the job message is acked, and the
// ack removes the request from the work queue.
func TestFinalStateIsStoredBeforeTheAck(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startRunner(Config{}, jobType("quick", ok))
	id := jobs.NewID(time.Now())
	w := e.record(jobs.ProgressSubject(id), ackSubjects)
	e.submitID(id, "quick", "")

	if end := e.waitEnded(id); end.Status != jobs.StatusSucceeded {
		t.Fatalf("job ended %s, want succeeded", describe(end))
	}
	e.waitQueueSettled()

	var got []string
	e.eventually("the final event and the ack on the wire", func() (bool, string) {
		got = w.entries()
		return index(got, "event succeeded") >= 0 && index(got, "ack +ACK") >= 0, strings.Join(got, ", ")
	})
	if fin, ack := index(got, "event succeeded"), index(got, "ack +ACK"); ack < fin {
		t.Errorf("the job message was acked before its final event was published: %s", strings.Join(got, ", "))
	}
	if n := count(got, "ack +ACK"); n != 1 {
		t.Errorf("%d acks, want 1: %s", n, strings.Join(got, ", "))
	}
	if n := count(got, "ack -NAK") + count(got, "ack +TERM"); n != 0 {
		t.Errorf("naks or terms of a job that succeeded: %s", strings.Join(got, ", "))
	}
	// The stored history ends with the final event too.
	evs := e.history(id)
	checkSeqs(t, id, evs)
	if last := evs[len(evs)-1]; last.Kind != jobs.KindSucceeded {
		t.Errorf("stored history ends with %s", describe(last))
	}
}

// 3b. A job that already ended (an earlier delivery stored its final event
// but died before its ack, or it was canceled while queued) is acked
// without running its handler and without new events.
func TestAlreadyEndedJobIsAckedWithoutRunning(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var c calls
	// The jobs end (an earlier delivery's final event, or a cancel) before
	// any runner starts. A first delivery does not read the state before
	// its first write, which is fenced on the request: that write finds the
	// job ended.
	var ids []string
	for range 2 {
		id := jobs.NewID(time.Now())
		now := time.Now().UTC()
		req := jobs.Request{ID: id, Type: "once", CreatedAt: now}
		queued, err := jobs.Enqueue(e.ctx, e.js, req)
		if err != nil {
			t.Fatal(err)
		}
		_, qseq, err := jobs.LastEvent(e.ctx, e.events, id)
		if err != nil {
			t.Fatal(err)
		}
		done := queued.Next(jobs.KindSucceeded, now)
		done.Status, done.Attempt, done.EndedAt, done.Result = jobs.StatusSucceeded, 1, &now, json.RawMessage(`"earlier"`)
		if _, err := jobs.PublishEvent(e.ctx, e.js, done, qseq); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	e.startRunner(Config{}, jobType("once", func(ctx context.Context, job *Job) (any, error) {
		c.add(job)
		return nil, nil
	}))
	q := e.waitQueueSettled()
	if got := c.seen(); len(got) != 0 {
		t.Errorf("handler ran %d times for jobs that had already ended", len(got))
	}
	for _, id := range ids {
		evs := e.history(id)
		checkSeqs(t, id, evs)
		if len(evs) != 2 || evs[1].Kind != jobs.KindSucceeded || string(evs[1].Result) != `"earlier"` {
			t.Errorf("history of an ended job changed:\n%s", describeAll(evs))
		}
	}
	if q.delivered != uint64(len(ids)) { // once each
		t.Errorf("requests delivered %d in all, want %d", q.delivered, len(ids))
	}
}

// 4. How a handler's failure ends the job.
func TestHandlerFailuresEndTheJob(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	counters := map[string]*atomic.Int32{}
	counted := func(name string, jt JobType) JobType {
		n := new(atomic.Int32)
		counters[name] = n
		h := jt.Handler
		jt.Handler = func(ctx context.Context, job *Job) (any, error) {
			n.Add(1)
			return h(ctx, job)
		}
		return jt
	}
	permanent := counted("permanent", jobType("permanent", func(context.Context, *Job) (any, error) {
		return nil, Permanent("bad_thing", "msg")
	}))
	plain := counted("plain", jobType("plain", func(context.Context, *Job) (any, error) {
		return nil, errors.New("boom")
	}))
	plain.Retry = RetryPolicy{MaxAttempts: 2, BaseDelay: 10 * time.Millisecond}
	panics := counted("panics", jobType("panics", func(context.Context, *Job) (any, error) {
		panic("kaboom")
	}))
	panics.Retry = RetryPolicy{MaxAttempts: 2, BaseDelay: 10 * time.Millisecond} // a panic is an error like any other: retried
	badResult := counted("bad-result", jobType("bad-result", func(context.Context, *Job) (any, error) {
		return make(chan int), nil
	}))
	slow := counted("slow", jobType("slow", func(ctx context.Context, job *Job) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}))
	slow.Timeout = 50 * time.Millisecond
	after := counted("after", jobType("after", ok))

	// One job at a time, so the job submitted after the panic runs after it.
	e.startRunner(Config{Concurrency: 1}, permanent, plain, panics, badResult, slow, after)

	for _, tc := range []struct {
		typ      string
		code     string
		message  string // substring
		attempts int
	}{
		{"permanent", "bad_thing", "msg", 1}, // not retried, although the default policy allows 5 attempts
		{"plain", "handler_error", "boom", 2},
		{"panics", "panic", "kaboom", 2},
		{"bad-result", "bad_result", "JSON", 1},
		{"slow", "timeout", "longer than", 1},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			id := e.submit(tc.typ, "")
			end := e.waitEnded(id)
			if end.Status != jobs.StatusFailed || end.Kind != jobs.KindFailed || end.Error == nil || end.Error.Code != tc.code || !strings.Contains(end.Error.Message, tc.message) {
				t.Fatalf("job ended %s, want failed with code %s and a message with %q", describe(end), tc.code, tc.message)
			}
			if strings.Contains(end.Error.Message, "goroutine") {
				t.Errorf("the error shows the stack (it belongs in the log): %s", end.Error.Message)
			}
			if end.Attempt != tc.attempts {
				t.Errorf("failed on attempt %d, want %d", end.Attempt, tc.attempts)
			}
			if n := counters[tc.typ].Load(); int(n) != tc.attempts {
				t.Errorf("handler called %d times, want %d", n, tc.attempts)
			}
			evs := e.history(id)
			checkSeqs(t, id, evs)
			var kinds []jobs.Kind
			for _, ev := range evs {
				kinds = append(kinds, ev.Kind)
			}
			want := []jobs.Kind{jobs.KindQueued, jobs.KindStarted}
			for range tc.attempts - 1 {
				want = append(want, jobs.KindRetrying, jobs.KindStarted)
			}
			want = append(want, jobs.KindFailed)
			if !slices.Equal(kinds, want) {
				t.Errorf("history kinds = %v, want %v:\n%s", kinds, want, describeAll(evs))
			}
			for _, ev := range evs {
				if ev.Kind == jobs.KindRetrying && (ev.Status != jobs.StatusQueued || ev.Error == nil || ev.Error.Code != tc.code || ev.NextAttemptAt == nil) {
					t.Errorf("retrying event %s, want queued with the error and the next attempt's time", describe(ev))
				}
			}
			e.waitQueueSettled()
		})
	}

	// The runner survived the panic and still runs jobs.
	id := e.submit("after", "")
	if end := e.waitEnded(id); end.Status != jobs.StatusSucceeded {
		t.Errorf("job after the failures ended %s, want succeeded", describe(end))
	}
}

// 5. Poison messages end, they never loop.
func TestPoisonMessagesAreTerminated(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var c calls
	e.startRunner(Config{AckWait: time.Second}, jobType("known", func(ctx context.Context, job *Job) (any, error) {
		c.add(job)
		return nil, nil
	}))
	w := e.record(ackSubjects)

	e.publishRequest("known", []byte("this is not JSON {"))
	e.publishRequest("known", []byte(`{"id":"a.b","type":"known","created_at":"2025-03-14T09:39:26Z"}`))
	e.publishRequest("known", []byte(`{"type":"known"}`)) // no id

	e.waitQueueSettled()
	e.eventually("three terminations on the wire", func() (bool, string) {
		got := w.entries()
		return count(got, "ack +TERM") == 3, strings.Join(got, ", ")
	})
	// Nothing comes back, even after the ack wait has passed.
	e.holdsFor(1500*time.Millisecond, "no redelivery of poison messages", func() (bool, string) {
		q := e.queueState()
		return q.err == nil && q.msgs == 0 && q.ackPending == 0 && q.redelivered == 0 && q.delivered == 3, q.String()
	})
	if got := w.entries(); count(got, "ack +TERM") != 3 || count(got, "ack -NAK")+count(got, "ack +ACK") != 0 {
		t.Errorf("settlements on the wire: %s, want exactly three +TERM", strings.Join(got, ", "))
	}
	info, err := e.events.Info(e.ctx, jetstream.WithSubjectFilter(jobs.AllEvents))
	if err != nil {
		t.Fatal(err)
	}
	if len(info.State.Subjects) != 0 {
		t.Errorf("poison messages produced events: %v", info.State.Subjects)
	}

	// A well-formed request of a type this runner does not know fails the
	// job with a clear error. (Runners only consume the queue subjects of
	// their own types, so such a request can only reach one on a subject of
	// a type it serves.)
	id := jobs.NewID(time.Now())
	e.submitOn("known", id, "nosuch", `{"x":1}`)
	end := e.waitEnded(id)
	if end.Status != jobs.StatusFailed || end.Error == nil || end.Error.Code != "unknown_type" || !strings.Contains(end.Error.Message, "nosuch") {
		t.Errorf("job of an unknown type ended %s, want failed with unknown_type naming the type", describe(end))
	}
	e.waitQueueSettled()
	checkSeqs(t, id, e.history(id))
	if got := c.seen(); len(got) != 0 {
		t.Errorf("handler of type known ran %d times", len(got))
	}
}

// 6. At most Concurrency handlers run at once.
func TestConcurrencyIsBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	release := make(chan struct{})
	var running, peak, started atomic.Int32
	e.startRunner(Config{Concurrency: 2}, jobType("block", func(ctx context.Context, job *Job) (any, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		started.Add(1)
		select {
		case <-release:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}))

	ids := make([]string, 6)
	for i := range ids {
		ids[i] = e.submit("block", "")
	}
	e.eventually("two handlers running", func() (bool, string) {
		return started.Load() >= 2, fmt.Sprintf("%d started", started.Load())
	})
	// With four jobs waiting, a runner that ignored its limit would start
	// a third one within this window.
	e.holdsFor(500*time.Millisecond, "two handlers at most", func() (bool, string) {
		return started.Load() == 2 && running.Load() == 2, fmt.Sprintf("%d started, %d running", started.Load(), running.Load())
	})
	close(release)
	for _, id := range ids {
		if end := e.waitEnded(id); end.Status != jobs.StatusSucceeded {
			t.Errorf("job %s ended %s, want succeeded", id, describe(end))
		}
	}
	if p := peak.Load(); p != 2 {
		t.Errorf("at most %d handlers ran at once, want 2", p)
	}
	if n := started.Load(); n != 6 {
		t.Errorf("handlers started %d times, want 6", n)
	}
	e.waitQueueSettled()
}

// 7. A job that runs longer than the ack wait heartbeats and is not
// redelivered.
func TestLongJobHeartbeatsAndIsDeliveredOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var c calls
	e.startRunner(Config{AckWait: time.Second}, jobType("long", func(ctx context.Context, job *Job) (any, error) {
		c.add(job)
		t := time.NewTimer(3 * time.Second) // the work takes three ack waits
		defer t.Stop()
		select {
		case <-t.C:
			return "done", nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}))
	id := jobs.NewID(time.Now())
	w := e.record(ackSubjects)
	e.submitID(id, "long", "")

	end := e.waitEnded(id)
	if end.Status != jobs.StatusSucceeded || end.Attempt != 1 {
		t.Errorf("job ended %s, want succeeded on attempt 1", describe(end))
	}
	if got := c.seen(); !slices.Equal(got, []int{1}) {
		t.Errorf("handler calls saw attempts %v, want one call, attempt 1", got)
	}
	q := e.waitQueueSettled()
	if q.redelivered != 0 || q.delivered != 1 {
		t.Errorf("consumer after the job: %s, want delivered once, never redelivered", q)
	}
	evs := e.history(id)
	checkSeqs(t, id, evs)
	starts := 0
	for _, ev := range evs {
		if ev.Kind == jobs.KindStarted {
			starts++
		}
	}
	if starts != 1 {
		t.Errorf("%d started events:\n%s", starts, describeAll(evs))
	}
	if n := count(w.entries(), "ack +WPI"); n < 3 {
		t.Errorf("%d heartbeats in 3s with a 1s ack wait, want at least 3", n)
	}
}

// 8. On shutdown a running job is handed back, not failed, and another
// runner finishes it as the next attempt, continuing its history.
func TestShutdownHandsRunningJobBack(t *testing.T) {
	t.Parallel()
	testShutdownHandBack(t, RetryPolicy{})
}

// A hand-back on shutdown is not a failed attempt: a job type that allows
// one attempt (exec types do by default) still runs on another runner.
// docs/lifecycle.md: "hands them back (Nak) for immediate redelivery to
// another runner. They are not marked failed."
//
// (This once failed: the attempt limit counted the hand-back as a crash.)
func TestShutdownHandBackOfSingleAttemptJob(t *testing.T) {
	t.Parallel()
	testShutdownHandBack(t, RetryPolicy{MaxAttempts: 1})
}

func testShutdownHandBack(t *testing.T, retry RetryPolicy) {
	e := newEnv(t)
	var c calls
	var firstStopped atomic.Bool
	jt := jobType("handback", func(ctx context.Context, job *Job) (any, error) {
		c.add(job)
		if job.Attempt == 1 {
			job.Progress.Count(1, 2)
			<-ctx.Done() // blocks until the runner takes it back
			firstStopped.Store(true)
			return nil, ctx.Err()
		}
		job.Progress.Count(2, 2)
		return fmt.Sprintf("finished on attempt %d", job.Attempt), nil
	})
	jt.Retry = retry
	first := e.startRunner(Config{ShutdownGrace: 200 * time.Millisecond, Concurrency: 1}, jt)
	id := e.submit("handback", "")
	e.waitEvent(id, "the first attempt to report progress", func(ev jobs.Event) bool { return ev.Current == 1 })

	stopAt := time.Now()
	if err := first.waitRun(t); err != nil {
		t.Fatalf("Run returned %v", err)
	}
	first.mu.Lock()
	held := len(first.running)
	first.mu.Unlock()
	if held != 0 || !firstStopped.Load() {
		t.Errorf("Run returned while it still held %d job(s) (handler returned: %v): it must hand them back first", held, firstStopped.Load())
	}
	if err := first.stop(t); err != nil {
		t.Fatalf("Run returned %v", err)
	}
	if took := time.Since(stopAt); took > 10*time.Second {
		t.Errorf("Run took %v to return with a 200ms shutdown grace", took)
	}
	// Make sure the hand-back reached the server before a new runner starts.
	if err := first.nc.FlushTimeout(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	first.nc.Close()

	mid, err := e.last(id)
	if err != nil {
		t.Fatal(err)
	}
	if mid.Status != jobs.StatusQueued || mid.Kind != jobs.KindRetrying || mid.Attempt != 1 || mid.Error != nil {
		t.Fatalf("after shutdown the job is %s, want handed back (retrying, queued) at attempt 1 with no error", describe(mid))
	}
	if n, err := e.queueMsgs(); err != nil || n != 1 {
		t.Fatalf("after shutdown the queue holds %d requests (%v), want the job's request back", n, err)
	}

	e.startRunner(Config{Concurrency: 1}, jt)
	end := e.waitEnded(id)
	if end.Status != jobs.StatusSucceeded || end.Attempt != 2 || string(end.Result) != `"finished on attempt 2"` {
		t.Fatalf("job ended %s, want succeeded on attempt 2", describe(end))
	}
	if got := c.seen(); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("handler calls saw attempts %v, want [1 2]", got)
	}
	evs := e.history(id)
	checkSeqs(t, id, evs)
	var starts []int
	for _, ev := range evs {
		switch ev.Kind {
		case jobs.KindStarted:
			starts = append(starts, ev.Attempt)
		case jobs.KindRetrying:
			if ev.Error != nil {
				t.Errorf("the hand-back carries an error: %s", describe(ev))
			}
		case jobs.KindFailed, jobs.KindCanceled:
			t.Errorf("shutdown wrote %s", describe(ev))
		}
	}
	if !slices.Equal(starts, []int{1, 2}) {
		t.Errorf("started events for attempts %v, want [1 2]:\n%s", starts, describeAll(evs))
	}
	e.waitQueueSettled()
}

// A handler that finished before shutdown began keeps its result, even if
// storing its last events outlasts the grace period: the job is done, not
// "running", and must not run again (an exec job is not assumed safe to
// run twice).
//
// Fixed: process checked for shutdown before it looks at the handler's
// result, so a success whose final progress is still being stored when the
// grace period ends is thrown away and the job handed back to run again.
func TestShutdownKeepsAFinishedHandlersResult(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	started, proceed, returning := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var c calls
	// A 1ns grace: the runner stops jobs as soon as it stops fetching. A
	// long pacing interval keeps the log lines waiting, so storing them
	// after the handler returned takes 200 round trips to the server.
	r := e.startRunner(Config{ShutdownGrace: time.Nanosecond, ProgressInterval: time.Minute, Concurrency: 1}, jobType("done", func(ctx context.Context, job *Job) (any, error) {
		c.add(job)
		job.Progress.Stage("working")
		close(started)
		<-proceed
		for i := range 200 {
			job.Progress.Log(fmt.Sprintf("line %d", i))
		}
		close(returning)
		return "the result", nil
	}))
	id := e.submit("done", "")
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("the handler did not start in 30s")
	}
	close(proceed)
	<-returning
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	last, err := e.last(id)
	if err != nil {
		t.Fatal(err)
	}
	if last.Status != jobs.StatusSucceeded {
		t.Errorf("after shutdown the job is %s, want succeeded: its handler had returned a result", describe(last))
	}
	if got := c.seen(); len(got) != 1 {
		t.Errorf("handler calls %v", got)
	}
}

// 9. An attempt that a newer attempt superseded (it lost its lease, say)
// stops writing and never finishes the job.
func TestSupersededAttemptStopsWriting(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	finish := make(chan struct{})
	var handlerCtx atomic.Pointer[context.Context]
	var reported atomic.Int64
	tr := e.startRunner(Config{ProgressInterval: 5 * time.Millisecond}, jobType("zombie", func(ctx context.Context, job *Job) (any, error) {
		handlerCtx.Store(&ctx)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		// A zombie: it keeps reporting and then claims success, whatever
		// its context says.
		for i := int64(1); ; i++ {
			job.Progress.Count(i, 1_000_000)
			reported.Store(i)
			select {
			case <-finish:
				return "zombie result", nil
			case <-tick.C:
			}
		}
	}))
	id := jobs.NewID(time.Now())
	w := e.record(jobs.ProgressSubject(id), ackSubjects)
	e.submitID(id, "zombie", "")
	e.waitEvent(id, "attempt 1 to store progress", func(ev jobs.Event) bool {
		return ev.Kind == jobs.KindProgress && ev.Attempt == 1 && ev.Current >= 2
	})

	// A newer attempt writes on top of the history.
	var newer jobs.Event
	e.eventually("the attempt-5 event to be stored", func() (bool, string) {
		ev, seq, err := jobs.LastEvent(e.ctx, e.events, id)
		if err != nil {
			return false, err.Error()
		}
		newer = ev.Next(jobs.KindStarted, time.Now())
		newer.Status, newer.Attempt = jobs.StatusRunning, 5
		_, err = jobs.PublishEvent(e.ctx, e.js, newer, seq)
		if err != nil {
			return false, err.Error() // the runner wrote in between: try again
		}
		return true, ""
	})
	// The runner notices at its next write and cancels the handler.
	e.eventually("the superseded handler's context to be cancelled", func() (bool, string) {
		ctx := handlerCtx.Load()
		return (*ctx).Err() != nil, fmt.Sprintf("handler reported %d times", reported.Load())
	})
	// The zombie reports more and then claims success.
	reportedThen := reported.Load()
	e.eventually("the zombie to report more progress", func() (bool, string) {
		return reported.Load() > reportedThen+3, fmt.Sprintf("%d", reported.Load())
	})
	close(finish)
	e.eventually("the runner to let go of the job", func() (bool, string) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return len(tr.running) == 0, fmt.Sprintf("holding %v", tr.running)
	})

	evs := e.history(id)
	checkSeqs(t, id, evs)
	at := slices.IndexFunc(evs, func(ev jobs.Event) bool { return ev.Attempt == 5 })
	if at < 0 {
		t.Fatalf("attempt-5 event missing:\n%s", describeAll(evs))
	}
	if at != len(evs)-1 {
		t.Errorf("events were stored after the newer attempt's:\n%s", describeAll(evs[at:]))
	}
	if last := evs[len(evs)-1]; last.Status != jobs.StatusRunning {
		t.Errorf("superseded attempt finished the job: %s", describe(last))
	}
	// It did not settle the message either: the newer attempt owns it.
	got := w.entries()
	if n := count(got, "ack +ACK") + count(got, "ack -NAK") + count(got, "ack +TERM"); n != 0 {
		t.Errorf("superseded attempt settled the job message: %s", strings.Join(got, ", "))
	}
	if q := e.queueState(); q.err != nil || q.msgs != 1 || q.ackPending != 1 {
		t.Errorf("after the superseded attempt: %s, want the request still held", q)
	}
	// Its metrics say so: a fenced write lost, the attempt superseded.
	e.eventually("the superseded attempt to be counted", func() (bool, string) {
		m := metricstest.Gather(t, tr.Metrics())
		lost, superseded := m.Value("jobwire_runner_fenced_writes_lost_total", "type", "zombie"), m.Value("jobwire_runner_attempts_total", "type", "zombie", "outcome", "superseded")
		return lost >= 1 && superseded == 1, fmt.Sprintf("fenced writes lost %v, superseded attempts %v", lost, superseded)
	})
}

// All runners of a pool share one consumer, whose AckWait is whatever the
// last runner that started asked for; a runner must heartbeat often
// enough for the consumer's actual AckWait, or its long jobs are given to
// a second runner while they still run (as in a rolling change of
// ACK_WAIT).
//
// Fixed: New updated the shared consumer's AckWait, but each runner
// heartbeats every third of its own Config.AckWait.
func TestHeartbeatKeepsUpWithThePoolsAckWait(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var c calls
	running := make(chan struct{}, 1)
	jt := jobType("long", func(ctx context.Context, job *Job) (any, error) {
		c.add(job)
		running <- struct{}{}
		t := time.NewTimer(4 * time.Second)
		defer t.Stop()
		select {
		case <-t.C:
			return "done", nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	// The old runner: 6s ack wait, a heartbeat every 2s.
	e.startRunner(Config{AckWait: 6 * time.Second}, jt)
	id := e.submit("long", "")
	select {
	case <-running:
	case <-e.ctx.Done():
		t.Fatal("the job did not start")
	}
	// A new runner of the same pool asks for a 1s ack wait.
	e.startRunner(Config{AckWait: time.Second}, jt)

	if end := e.waitEnded(id); end.Status != jobs.StatusSucceeded {
		t.Errorf("job ended %s", describe(end))
	}
	if got := c.seen(); !slices.Equal(got, []int{1}) {
		t.Errorf("handler calls saw attempts %v, want one call: the job was given to a second runner while it ran", got)
	}
}

// A cancel request reaches the runner holding the job, which stops the
// handler and ends the job as canceled.
func TestCancelRequestCancelsRunningJob(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startRunner(Config{}, jobType("cancelable", func(ctx context.Context, job *Job) (any, error) {
		job.Progress.Stage("waiting")
		<-ctx.Done()
		return nil, ctx.Err()
	}))
	id := e.submit("cancelable", "")
	e.waitEvent(id, "the job to run", func(ev jobs.Event) bool { return ev.Stage == "waiting" })

	// No answer for a job this runner does not hold.
	req, _ := json.Marshal(jobs.CancelRequest{By: "alice", Reason: "wrong folder"})
	if _, err := e.nc.Request(jobs.CancelSubject(jobs.NewID(time.Now())), req, 300*time.Millisecond); err == nil {
		t.Errorf("a cancel request for a job nobody holds got an answer")
	}
	msg, err := e.nc.Request(jobs.CancelSubject(id), req, 10*time.Second)
	if err != nil {
		t.Fatalf("cancel request: %v", err)
	}
	var reply jobs.CancelReply
	if err := json.Unmarshal(msg.Data, &reply); err != nil || !reply.Accepted {
		t.Fatalf("cancel reply %s (%v), want accepted", msg.Data, err)
	}
	end := e.waitEnded(id)
	want := jobs.CanceledError(jobs.CancelRequest{By: "alice", Reason: "wrong folder"})
	if end.Status != jobs.StatusCanceled || end.Kind != jobs.KindCanceled || end.Error == nil || *end.Error != *want {
		t.Errorf("job ended %s, want canceled with %v", describe(end), want)
	}
	e.waitQueueSettled()
}

// Runner pools filter by type (ARCHITECTURE.md: "subjects that carry the
// job type, so runner pools can filter by type"): a runner never takes,
// and fails, a job of a type another pool serves.
func TestRunnerPoolsOnlyTakeTheirTypes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var alphaRuns, betaRuns atomic.Int32
	e.startRunner(Config{Concurrency: 1}, jobType("alpha", func(context.Context, *Job) (any, error) {
		alphaRuns.Add(1)
		return nil, nil
	}))
	alphaConsumer := e.consumerName
	// Let the alpha runner be first in line for the next request.
	e.eventually("the alpha runner to wait for work", func() (bool, string) {
		ci, err := e.consumerNamed(alphaConsumer)
		if err != nil {
			return false, err.Error()
		}
		return ci.NumWaiting > 0, fmt.Sprintf("%d waiting", ci.NumWaiting)
	})
	e.startRunner(Config{Concurrency: 1}, jobType("beta", func(context.Context, *Job) (any, error) {
		betaRuns.Add(1)
		return nil, nil
	}))
	var ids []string
	for range 4 {
		ids = append(ids, e.submit("beta", ""))
	}
	for _, id := range ids {
		if end := e.waitEnded(id); end.Status != jobs.StatusSucceeded {
			t.Errorf("beta job ended %s, want succeeded by the beta runner", describe(end))
		}
	}
	if a, b := alphaRuns.Load(), betaRuns.Load(); a != 0 || b != 4 {
		t.Errorf("alpha handler ran %d times, beta %d, want 0 and 4", a, b)
	}
}

// Progress a handler reports just before it returns is carried by the
// event that ends the attempt instead of a progress event of its own.
func TestLastProgressRidesOnTheFinalEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startRunner(Config{},
		jobType("quick", func(ctx context.Context, job *Job) (any, error) {
			job.Progress.Stage("only stage")
			job.Progress.Count(3, 7)
			job.Progress.Message("almost")
			return "done", nil
		}),
		jobType("doomed", func(ctx context.Context, job *Job) (any, error) {
			job.Progress.Stage("parsing")
			job.Progress.Count(2, 5)
			return nil, Permanent("bad_input", "bad input")
		}))

	for _, tc := range []struct {
		typ    string
		status jobs.Status
		stage  string
		cur    int64
		pct    float64
	}{
		{"quick", jobs.StatusSucceeded, "only stage", 7, 100}, // success means 100 %
		{"doomed", jobs.StatusFailed, "parsing", 2, 40},
	} {
		id := jobs.NewID(time.Now())
		reads := e.readsOfState(id)
		e.submitID(id, tc.typ, `{}`)
		end := e.waitEnded(id)
		// The request names its queued event: the runner reads nothing.
		if got := reads(); got != 0 {
			t.Errorf("%s: the runner read the job's state %d times, want 0", tc.typ, got)
		}
		if end.Status != tc.status || end.Stage != tc.stage || end.Current != tc.cur || end.Percent == nil || *end.Percent != tc.pct {
			t.Errorf("%s ended %s, want %s at stage %q, current %d, %v%%", tc.typ, describe(end), tc.status, tc.stage, tc.cur, tc.pct)
		}
		evs := e.history(id)
		checkSeqs(t, id, evs)
		var kinds []jobs.Kind
		for _, ev := range evs {
			kinds = append(kinds, ev.Kind)
		}
		if want := []jobs.Kind{jobs.KindQueued, jobs.KindStarted, jobs.Kind(tc.status)}; !slices.Equal(kinds, want) {
			t.Errorf("%s history %v, want %v:\n%s", tc.typ, kinds, want, describeAll(evs))
		}
	}
}
