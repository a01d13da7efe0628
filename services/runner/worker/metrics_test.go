package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/metrics/metricstest"
	"github.com/jobwire/jobwire/shared/jobs"
)

// The runner's metrics follow what happened to its jobs: one of each
// ending (success, a retry then success, a permanent failure, a panic, a
// timeout, a cancel), poison messages, and a job of a type it does not
// serve. No label value is ever a job id.
func TestMetricsFollowEveryOutcome(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	flaky := jobType("flaky", func(_ context.Context, job *Job) (any, error) {
		if job.Attempt == 1 {
			return nil, errors.New("not yet")
		}
		return "ok", nil
	})
	flaky.Retry = RetryPolicy{MaxAttempts: 3, BaseDelay: 10 * time.Millisecond}
	panics := jobType("panics", func(context.Context, *Job) (any, error) { panic("kaboom") })
	panics.Retry = RetryPolicy{MaxAttempts: 1}
	slow := jobType("slow", func(ctx context.Context, _ *Job) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	slow.Timeout = 50 * time.Millisecond
	running := make(chan struct{}, 1)
	cancelable := jobType("cancelable", func(ctx context.Context, _ *Job) (any, error) {
		running <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	})
	tr := e.startRunner(Config{AckWait: time.Second}, jobType("okay", ok), flaky, panics, slow, cancelable,
		jobType("permanent", func(context.Context, *Job) (any, error) { return nil, Permanent("no", "never") }))
	gather := func() metricstest.Families { return metricstest.Gather(t, tr.Metrics()) }

	ids := map[string]string{}
	for _, typ := range []string{"okay", "flaky", "permanent", "panics", "slow", "cancelable"} {
		ids[typ] = e.submit(typ, "")
	}
	e.publishRequest("okay", []byte("not JSON {"))
	unknown := jobs.NewID(time.Now())
	e.submitOn("okay", unknown, "nosuch", "")
	ids["nosuch"] = unknown

	// The cancelable job runs past a heartbeat, then is canceled.
	select {
	case <-running:
	case <-e.ctx.Done():
		t.Fatal("the cancelable job did not start")
	}
	e.eventually("a heartbeat", func() (bool, string) {
		n := gather().Value("jobwire_runner_heartbeats_total")
		return n >= 1, fmt.Sprint(n)
	})
	if v := gather().Value("jobwire_runner_jobs_running", "type", "cancelable"); v != 1 {
		t.Errorf("jobs_running{cancelable} = %v while it runs, want 1", v)
	}
	req, _ := json.Marshal(jobs.CancelRequest{By: "alice"})
	if _, err := e.nc.Request(jobs.CancelSubject(ids["cancelable"]), req, 10*time.Second); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	for _, id := range ids {
		e.waitEnded(id)
	}

	want := []struct {
		name   string
		labels []string
		value  float64
	}{
		{"jobwire_runner_jobs_started_total", []string{"type", "okay"}, 1},
		{"jobwire_runner_jobs_started_total", []string{"type", "flaky"}, 1}, // the retry is not a new job
		{"jobwire_runner_jobs_finished_total", []string{"type", "okay", "status", "succeeded"}, 1},
		{"jobwire_runner_jobs_finished_total", []string{"type", "flaky", "status", "succeeded"}, 1},
		{"jobwire_runner_jobs_finished_total", []string{"type", "permanent", "status", "failed"}, 1},
		{"jobwire_runner_jobs_finished_total", []string{"type", "panics", "status", "failed"}, 1},
		{"jobwire_runner_jobs_finished_total", []string{"type", "slow", "status", "failed"}, 1},
		{"jobwire_runner_jobs_finished_total", []string{"type", "cancelable", "status", "canceled"}, 1},
		{"jobwire_runner_jobs_finished_total", []string{"type", "unknown", "status", "failed"}, 1},
		{"jobwire_runner_jobs_finished_total", []string{"status", "failed"}, 4},
		{"jobwire_runner_attempts_total", []string{"type", "flaky", "outcome", "retried"}, 1},
		{"jobwire_runner_attempts_total", []string{"type", "flaky", "outcome", "succeeded"}, 1},
		{"jobwire_runner_attempts_total", []string{"type", "flaky"}, 2},
		{"jobwire_runner_attempts_total", []string{"type", "cancelable", "outcome", "canceled"}, 1},
		{"jobwire_runner_attempts_total", []string{"type", "permanent", "outcome", "failed"}, 1},
		{"jobwire_runner_panics_total", []string{"type", "panics"}, 1},
		{"jobwire_runner_timeouts_total", []string{"type", "slow"}, 1},
		{"jobwire_runner_timeouts_total", nil, 1},
		{"jobwire_runner_cancels_total", []string{"type", "cancelable"}, 1},
		{"jobwire_runner_poison_messages_total", []string{"reason", "undecodable"}, 1},
		{"jobwire_runner_poison_messages_total", []string{"reason", "unknown_type"}, 1},
		{"jobwire_runner_run_duration_seconds", []string{"type", "flaky"}, 2}, // both attempts
		{"jobwire_runner_queue_wait_seconds", []string{"type", "flaky"}, 1},   // the first one only
		{"jobwire_runner_jobs_running", nil, 0},
		{"jobwire_runner_concurrency", nil, 4},
		{"jobwire_runner_job_type_info", []string{"type", "slow"}, 1},
	}
	// Counters move just after the events a watcher sees: poll.
	e.eventually("the counters of every ending", func() (bool, string) {
		got := gather()
		var wrong []string
		for _, w := range want {
			if v := got.Value(w.name, w.labels...); v != w.value {
				wrong = append(wrong, fmt.Sprintf("%s%v = %v, want %v", w.name, w.labels, v, w.value))
			}
		}
		return len(wrong) == 0, strings.Join(wrong, "; ")
	})
	got := gather()
	if s := got.Sum("jobwire_runner_run_duration_seconds", "type", "slow"); s < 0.05 {
		t.Errorf("run duration of the slow job: %vs, want at least its 50ms timeout", s)
	}
	checkNoJobIDs(t, got, ids)
}

// checkNoJobIDs fails if any label value of fams names one of the jobs.
func checkNoJobIDs(t *testing.T, fams metricstest.Families, ids map[string]string) {
	t.Helper()
	for _, lv := range fams.LabelValues() {
		for _, id := range ids {
			if strings.Contains(lv, id) {
				t.Errorf("label value %s holds a job id", lv)
			}
		}
	}
}

// The queue figures show the jobs waiting behind a busy runner and how
// long the oldest has waited; scrapes within the cache's age read the
// consumer once.
func TestQueueMetricsShowWaitingJobs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	gate := make(chan struct{})
	tr := e.startRunner(Config{Concurrency: 1}, jobType("gated", func(ctx context.Context, _ *Job) (any, error) {
		select {
		case <-gate:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}))
	var ids []string
	for range 3 {
		ids = append(ids, e.submit("gated", ""))
	}
	e.waitEvent(ids[0], "the first job to start", func(ev jobs.Event) bool { return ev.Status == jobs.StatusRunning })
	var got metricstest.Families
	e.eventually("two jobs waiting, one running", func() (bool, string) {
		// A collector of the test's own each time: nothing cached.
		got = metricstest.Gather(t, newQueueMetrics([]string{"gated"}, e.js, e.queue))
		p, a := got.Value("jobwire_runner_queue_pending_jobs", "type", "gated"), got.Value("jobwire_runner_queue_ack_pending_jobs", "type", "gated")
		return p == 2 && a == 1, fmt.Sprintf("pending %v, ack pending %v", p, a)
	})
	if age := got.Value("jobwire_runner_queue_oldest_pending_age_seconds", "type", "gated"); age <= 0 || age > 60 {
		t.Errorf("oldest pending age %vs, want the few moments since it was submitted", age)
	}

	// Scrapes in quick succession: the runner reads its consumers (one per
	// priority) once.
	w := e.record("$JS.API.CONSUMER.INFO.>")
	c := tr.Metrics()
	for range 3 {
		if got := metricstest.Gather(t, c); got.Value("jobwire_runner_queue_pending_jobs", "type", "gated") != 2 {
			t.Errorf("the runner's own figures: pending %v, want 2", got.Value("jobwire_runner_queue_pending_jobs", "type", "gated"))
		}
	}
	if err := e.nc.FlushTimeout(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if n := count(w.entries(), "undecodable $JS.API.CONSUMER.INFO."); n != len(jobs.Priorities) {
		t.Errorf("%d consumer info requests for 3 scrapes, want %d (cached for %v)", n, len(jobs.Priorities), queueInfoMaxAge)
	}
	close(gate)
	for _, id := range ids {
		e.waitEnded(id)
	}
}
