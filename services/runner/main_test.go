package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/metrics/metricstest"
	"github.com/jobwire/jobwire/internal/natstest"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go/jetstream"
)

func TestRunRunsJobsFromNATS(t *testing.T) {
	t.Parallel()
	ns := natstest.Server(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env := map[string]string{"NATS_URL": ns.ClientURL(), "RUNNER_CONCURRENCY": "2", "SHUTDOWN_GRACE": "1s"}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(runCtx, nil, func(k string) string { return env[k] }, io.Discard, io.Discard) }()

	js, err := jetstream.New(natstest.Connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	id := jobs.NewID(time.Now())
	req := jobs.Request{ID: id, Type: "demo", Input: json.RawMessage(`{"steps":3,"step_ms":1}`), CreatedAt: time.Now()}
	// The runner creates the stream at start-up; publishing retries until then.
	for {
		if _, err := jobs.Enqueue(ctx, js, req); err == nil {
			break
		} else if ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	events, err := js.Stream(ctx, jobs.Stream)
	if err != nil {
		t.Fatal(err)
	}
	for {
		ev, _, err := jobs.LastEvent(ctx, events, id)
		if err == nil && ev.Status == jobs.StatusSucceeded {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("job did not succeed: %+v %v", ev, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}

// With TOPOLOGY=check the runner creates no stream: it waits, saying
// what is missing and that jobwire-setup makes it, and starts running
// jobs once the streams are there.
func TestCheckModeWaitsForTheTopology(t *testing.T) {
	t.Parallel()
	ns := natstest.Server(t)
	r := startRun(t, map[string]string{"NATS_URL": ns.ClientURL(), "TOPOLOGY": "check", "SHUTDOWN_GRACE": "1s"})
	ctx := r.ctx
	r.waitFor(t, "the runner to say what is missing", func() bool { return strings.Contains(r.stderr.String(), "stream JOBS is missing") })
	if log := r.stderr.String(); !strings.Contains(log, "jobwire-setup") || !strings.Contains(log, "bucket JOBWIRE_TYPES is missing") {
		t.Errorf("the runner's warning does not list everything missing and name jobwire-setup:\n%s", log)
	}
	js, err := jetstream.New(natstest.Connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(ctx, jobs.Stream); err == nil {
		t.Fatal("the runner created the JOBS stream in check mode")
	}
	if _, err := (jobs.Topology{}).CreateOrUpdate(ctx, js); err != nil { // what jobwire-setup does
		t.Fatal(err)
	}
	r.waitFor(t, "the runner to start once the streams were there", func() bool { return strings.Contains(r.stdout.String(), "jobwire runner: running") })
	if err := r.stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
}

// running is run going on a goroutine of its own, as main runs it, with
// the test's deadline (ctx).
type running struct {
	ctx            context.Context
	stdout, stderr natstest.LockedBuffer
	stop           func() error // ends run's context and returns what run returned
}

// startRun runs the runner with env as its whole environment.
func startRun(t *testing.T, env map[string]string) *running {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	r := &running{ctx: ctx}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(runCtx, nil, func(k string) string { return env[k] }, &r.stdout, &r.stderr) }()
	r.stop = func() error { stop(); return <-done }
	return r
}

// waitFor polls cond until it holds, failing the test (with the runner's
// log) when the deadline passes.
func (r *running) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if r.ctx.Err() != nil {
			t.Fatalf("waiting for %s:\n%s", what, r.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	t.Parallel()
	env := map[string]string{"RUNNER_CONCURRENCY": "0", "ACK_WAIT": "soon", "DEBUG_ADDR": "nope", "METRICS_ADDR": "nope", "TOPOLOGY": "sometimes", "JETSTREAM_REPLICAS": "2",
		"LOG_FORMAT": "xml", "LOG_LEVEL": "loud", "OTEL_TRACES_EXPORTER": "zipkin", "OTEL_TRACES_SAMPLER": "sometimes",
		"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
	err := run(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("bad configuration accepted")
	}
	for _, want := range []string{"NATS_URL", "RUNNER_CONCURRENCY", "ACK_WAIT", "DEBUG_ADDR", "METRICS_ADDR", "TOPOLOGY", "JETSTREAM_REPLICAS",
		"LOG_FORMAT", "LOG_LEVEL", "OTEL_TRACES_EXPORTER", "OTEL_TRACES_SAMPLER", "OTEL_EXPORTER_OTLP_ENDPOINT", "grpc"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not mention %s", err, want)
		}
	}
}

// --help prints the flags and is no failure (main exits 0).
func TestHelpIsNoFailure(t *testing.T) {
	t.Parallel()
	var stderr strings.Builder
	if err := run(context.Background(), []string{"--help"}, func(string) string { return "" }, io.Discard, &stderr); err != nil {
		t.Fatalf("run --help: %v", err)
	}
	if !strings.Contains(stderr.String(), "-nats-url") {
		t.Fatalf("run --help printed %q, want the flags", stderr.String())
	}
}

// HEALTH_ADDR serves /healthz at once and /readyz once the runner is
// connected and its consumers are bound: what the container's health
// check asks.
func TestHealthAddrAnswersProbes(t *testing.T) {
	t.Parallel()
	ns := natstest.Server(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env := map[string]string{"NATS_URL": ns.ClientURL(), "HEALTH_ADDR": "127.0.0.1:0", "SHUTDOWN_GRACE": "1s"}
	var stdout natstest.LockedBuffer
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(runCtx, nil, func(k string) string { return env[k] }, &stdout, io.Discard) }()

	var base string
	for base == "" {
		if _, rest, ok := strings.Cut(stdout.String(), "health checks on "); ok {
			base, _, _ = strings.Cut(rest, "/readyz")
		} else if ctx.Err() != nil {
			t.Fatalf("no health address printed: %q", stdout.String())
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	get := func(path string) int {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d", code)
	}
	for get("/readyz") != http.StatusOK {
		if ctx.Err() != nil {
			t.Fatal("/readyz never answered 200")
		}
		time.Sleep(20 * time.Millisecond)
	}
	ns.Shutdown() // NATS gone: not ready
	ns.WaitForShutdown()
	for get("/readyz") != http.StatusServiceUnavailable {
		if ctx.Err() != nil {
			t.Fatal("/readyz stayed 200 without NATS")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Logf("run after NATS stopped: %v", err)
	}
}

var metricsLine = regexp.MustCompile(`metrics server listening" addr=(\S+)`)

// METRICS_ADDR serves the runner's metrics, with the Go runtime's and the
// process's, on a listener of its own; they follow the jobs it runs.
func TestMetricsAddrServesRunnerMetrics(t *testing.T) {
	t.Parallel()
	ns := natstest.Server(t)
	r := startRun(t, map[string]string{"NATS_URL": ns.ClientURL(), "METRICS_ADDR": "127.0.0.1:0", "SHUTDOWN_GRACE": "1s"})
	ctx := r.ctx
	r.waitFor(t, "the runner to start", func() bool { return strings.Contains(r.stdout.String(), "jobwire runner: running") })
	m := metricsLine.FindStringSubmatch(r.stderr.String())
	if m == nil {
		t.Fatalf("no metrics address logged:\n%s", r.stderr.String())
	}
	url := "http://" + m[1] + "/metrics"

	nc := natstest.Connect(t, ns)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := jobs.Enqueue(ctx, js, jobs.Request{ID: jobs.NewID(now), Type: "demo", Input: json.RawMessage(`{"steps":2,"step_ms":1}`), CreatedAt: now, Owner: "user:test"}); err != nil {
		t.Fatal(err)
	}
	for {
		got := metricstest.Scrape(t, url)
		if got.Value("jobwire_runner_jobs_finished_total", "type", "demo", "status", "succeeded") == 1 {
			for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "jobwire_runner_concurrency"} {
				if !got.Has(name) {
					t.Errorf("the scrape has no %s", name)
				}
			}
			if got.Value("jobwire_nats_connected", "connection", "runner") != 1 || got.Value("jobwire_runner_queue_wait_seconds", "type", "demo") != 1 {
				t.Errorf("connected %v, queue waits %v; want 1 and 1",
					got.Value("jobwire_nats_connected", "connection", "runner"), got.Value("jobwire_runner_queue_wait_seconds", "type", "demo"))
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the scrape never showed the job finished: %v", got.Names("jobwire_runner_jobs"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := r.stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	if _, err := http.Get(url); err == nil {
		t.Errorf("the metrics listener is still open after run returned")
	}
}
