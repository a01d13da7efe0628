package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env := map[string]string{"NATS_URL": ns.ClientURL(), "TOPOLOGY": "check", "SHUTDOWN_GRACE": "1s"}
	var stdout, stderr natstest.LockedBuffer
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(runCtx, nil, func(k string) string { return env[k] }, &stdout, &stderr) }()
	for !strings.Contains(stderr.String(), "stream JOBS is missing") {
		if ctx.Err() != nil {
			t.Fatalf("the runner did not say what is missing:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if log := stderr.String(); !strings.Contains(log, "jobwire-setup") || !strings.Contains(log, "bucket JOBWIRE_TYPES is missing") {
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
	for !strings.Contains(stdout.String(), "jobwire runner: running") {
		if ctx.Err() != nil {
			t.Fatalf("the runner did not start once the streams were there:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	t.Parallel()
	env := map[string]string{"RUNNER_CONCURRENCY": "0", "ACK_WAIT": "soon", "DEBUG_ADDR": "nope", "TOPOLOGY": "sometimes", "JETSTREAM_REPLICAS": "2"}
	err := run(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("bad configuration accepted")
	}
	for _, want := range []string{"NATS_URL", "RUNNER_CONCURRENCY", "ACK_WAIT", "DEBUG_ADDR", "TOPOLOGY", "JETSTREAM_REPLICAS"} {
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
