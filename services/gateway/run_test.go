package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"maps"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/testsys"
	"github.com/jobwire/jobwire/shared/jobs"
)

var urlLine = regexp.MustCompile(`jobwire is running: (http://\S+)/`)

// startDev runs the one-command mode, as `go run ./services/gateway --dev`
// would, and returns its base URL and a function that stops it.
func startDev(t *testing.T, dataDir string) (string, func()) {
	url, _, stop := startDevWith(t, dataDir, nil)
	return url, stop
}

// startDevWith is startDev with more environment; it also returns what
// the process logged.
func startDevWith(t *testing.T, dataDir string, extra map[string]string) (string, *testsys.LockedBuffer, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr testsys.LockedBuffer
	env := map[string]string{"DATA_DIR": dataDir, "DEV_NATS_ADDR": "127.0.0.1:0", "HTTP_ADDR": "127.0.0.1:0", "SHUTDOWN_GRACE": "200ms", "ACK_WAIT": "2s", "SESSION_SECRET": "dev-test-secret"}
	maps.Copy(env, extra)
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--dev"}, func(k string) string { return env[k] }, &stdout, &stderr) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := urlLine.FindStringSubmatch(stdout.String()); m != nil {
			stop := func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("run: %v\n%s", err, stderr.String())
				}
			}
			return m[1], &stderr, stop
		}
		select {
		case err := <-done:
			cancel()
			t.Fatalf("run ended early: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no URL printed in 30s; stdout %q stderr %q", stdout.String(), stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDevModeStateSurvivesRestartOfEverything(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	url, stop := startDev(t, dir)
	sys := &testsys.System{URL: url}
	done := sys.Submit(t, "demo", `{"steps":3,"step_ms":1}`)
	final := sys.WaitStatus(t, done.ID, jobs.StatusSucceeded, 20*time.Second)
	// A job still running when everything stops must finish after the restart.
	pending := sys.Submit(t, "demo", `{"steps":100,"step_ms":20}`)
	sys.WaitStatus(t, pending.ID, jobs.StatusRunning, 20*time.Second)
	stop()
	url, stop = startDev(t, dir)
	defer stop()
	sys = (&testsys.System{URL: url}).SameCaller(sys)
	again, code := sys.Get(t, done.ID)
	if code != 200 || again.Status != jobs.StatusSucceeded || again.Seq != final.Seq {
		t.Fatalf("after restart: %d %+v, want the final state seq %d", code, again, final.Seq)
	}
	if s, code := sys.Get(t, pending.ID); code != 200 || s.Status.Terminal() {
		t.Fatalf("pending job after restart: %d %+v", code, s)
	}
	end := sys.WaitStatus(t, pending.ID, jobs.StatusSucceeded, 60*time.Second)
	if end.Attempt < 2 {
		t.Errorf("pending job finished at attempt %d; it should have been handed back and run again", end.Attempt)
	}
}

func TestConfigErrorsReportedTogether(t *testing.T) {
	t.Parallel()
	env := map[string]string{"MAX_BODY_BYTES": "10", "RUNNER_CONCURRENCY": "x", "HTTP_ADDR": "nope", "DEBUG_ADDR": "nope", "METRICS_ADDR": "nope", "TOPOLOGY": "sometimes", "JETSTREAM_REPLICAS": "4"}
	var stderr testsys.LockedBuffer
	err := run(context.Background(), nil, func(k string) string { return env[k] }, &stderr, &stderr)
	if err == nil {
		t.Fatal("run accepted a bad configuration")
	}
	for _, want := range []string{"NATS_URL", "MAX_BODY_BYTES", "RUNNER_CONCURRENCY", "HTTP_ADDR", "DEBUG_ADDR", "METRICS_ADDR", "TOPOLOGY", "JETSTREAM_REPLICAS"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	// --dev makes its own streams: it cannot only check them.
	env = map[string]string{"DEV": "true", "TOPOLOGY": "check"}
	if err := run(context.Background(), nil, func(k string) string { return env[k] }, &stderr, &stderr); err == nil || !strings.Contains(err.Error(), "TOPOLOGY=check") {
		t.Errorf("--dev with TOPOLOGY=check: %v, want an error naming TOPOLOGY=check", err)
	}
}

// --help prints the flags and is no failure (main exits 0).
func TestHelpIsNoFailure(t *testing.T) {
	t.Parallel()
	var stderr testsys.LockedBuffer
	if err := run(context.Background(), []string{"--help"}, func(string) string { return "" }, io.Discard, &stderr); err != nil {
		t.Fatalf("run --help: %v", err)
	}
	if !strings.Contains(stderr.String(), "-max-body-bytes") {
		t.Fatalf("run --help printed %q, want the flags", stderr.String())
	}
}

var debugLine = regexp.MustCompile(`debug server \(pprof\) listening" addr=(\S+)`)

func TestDebugAddrServesProfilesOnItsOwnListener(t *testing.T) {
	t.Parallel()
	url, logs, stop := startDevWith(t, t.TempDir(), map[string]string{"DEBUG_ADDR": "127.0.0.1:0"})
	defer stop()
	m := debugLine.FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no debug server address logged:\n%s", logs)
	}
	// Metrics are off unless METRICS_ADDR is set, --dev included.
	if strings.Contains(logs.String(), "metrics server") {
		t.Errorf("a metrics listener started without METRICS_ADDR:\n%s", logs)
	}
	res, err := http.Get("http://" + m[1] + "/debug/pprof/heap?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), "heap profile") {
		t.Fatalf("heap profile: %d %.200s", res.StatusCode, body)
	}
	// The public address never serves profiles.
	res, err = http.Get(url + "/debug/pprof/heap")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("public /debug/pprof/heap: %d, want 404", res.StatusCode)
	}
}

// --dev with LOG_FORMAT=json and an OTLP endpoint: every line the process
// logs (its runner's too) is a JSON object, a job's lines name it, its
// type, attempt and trace; the submit's span and the attempt's reach the
// collector in one trace by the time run returns (flushed on exit).
func TestDevModeLogsJSONAndExportsTraces(t *testing.T) {
	t.Parallel()
	recv := testsys.NewOTLPReceiver(t)
	url, stderr, stop := startDevWith(t, t.TempDir(), map[string]string{"LOG_FORMAT": "json", "OTEL_EXPORTER_OTLP_ENDPOINT": recv.URL})
	sys := &testsys.System{URL: url}
	snap := sys.Submit(t, "demo", `{"steps":2,"step_ms":1}`)
	sys.WaitStatus(t, snap.ID, jobs.StatusSucceeded, 20*time.Second)
	stop()

	submits, runs := recv.Named("POST /api/jobs"), recv.Named("run demo")
	if len(submits) != 1 || len(runs) != 1 {
		t.Fatalf("spans at the collector: %d submits, %d attempts; want 1 each", len(submits), len(runs))
	}
	if !bytes.Equal(runs[0].TraceId, submits[0].TraceId) || !bytes.Equal(runs[0].ParentSpanId, submits[0].SpanId) || submits[0].Service != "jobwire-gateway" {
		t.Errorf("attempt %x under %x, submit %x/%x of %q: want the attempt a child of the submit, service jobwire-gateway",
			runs[0].TraceId, runs[0].ParentSpanId, submits[0].TraceId, submits[0].SpanId, submits[0].Service)
	}
	var started bool
	for _, line := range testsys.JSONLogLines(t, stderr.String()) {
		if line["msg"] == "job started" && line["job_id"] == snap.ID {
			started = line["type"] == "demo" && line["attempt"] == 1.0 && line["trace_id"] == hex.EncodeToString(runs[0].TraceId)
		}
	}
	if !started {
		t.Errorf("no JSON line \"job started\" with the job's id, type, attempt 1 and trace:\n%s", stderr.String())
	}
}
