package main

import (
	"context"
	"encoding/hex"
	"io"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/natstest"
	"github.com/jobwire/jobwire/internal/testsys"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
)

// With an OTLP endpoint set the runner traces each delivery under the
// request's trace context, exports the spans to the endpoint before run
// returns (the last ones flushed on exit), and with LOG_FORMAT=json logs
// JSON lines in which the job's lines name the job, its type, attempt and
// trace.
func TestTracesExportedOverOTLPAndJSONLogs(t *testing.T) {
	t.Parallel()
	recv := testsys.NewOTLPReceiver(t)
	ns := natstest.Server(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env := map[string]string{
		"NATS_URL": ns.ClientURL(), "SHUTDOWN_GRACE": "1s", "LOG_FORMAT": "json", "LOG_LEVEL": "debug",
		// The SDK batches spans for 5 s (OTEL_BSP_SCHEDULE_DELAY) before
		// it exports them; the job takes less, so its span reaches the
		// collector by the flush on exit.
		"OTEL_EXPORTER_OTLP_ENDPOINT": recv.URL,
	}
	var stderr testsys.LockedBuffer
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(runCtx, nil, func(k string) string { return env[k] }, io.Discard, &stderr) }()

	js, err := jetstream.New(natstest.Connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	tid, _ := trace.TraceIDFromHex("5b8efff798038103d269b633813fc60c")
	sid, _ := trace.SpanIDFromHex("eee19b7ec3c1b174")
	submitCtx := trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
	req := jobs.Request{ID: jobs.NewID(time.Now()), Type: "demo", CreatedAt: time.Now()}
	req.Input = []byte(`{"steps":2,"step_ms":1}`)
	// The runner creates the streams at start-up; enqueueing retries until then.
	for {
		if _, err := jobs.Enqueue(submitCtx, js, req); err == nil {
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
		ev, _, err := jobs.LastEvent(ctx, events, req.ID)
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

	runs := recv.Named("run demo")
	if len(runs) != 1 {
		t.Fatalf("%d spans \"run demo\" reached the collector by the time run returned, want 1", len(runs))
	}
	run := runs[0]
	if run.Service != "jobwire-runner" {
		t.Errorf("span of service %q, want jobwire-runner", run.Service)
	}
	if hex.EncodeToString(run.TraceId) != tid.String() || hex.EncodeToString(run.ParentSpanId) != sid.String() {
		t.Errorf("the attempt's span: trace %x parent %x, want trace %s under %s (the request's traceparent)", run.TraceId, run.ParentSpanId, tid, sid)
	}

	var started bool
	for _, line := range testsys.JSONLogLines(t, stderr.String()) {
		if line["msg"] == "job started" && line["job_id"] == req.ID {
			started = line["type"] == "demo" && line["attempt"] == 1.0 && line["trace_id"] == tid.String() && line["span_id"] == hex.EncodeToString(run.SpanId)
		}
	}
	if !started {
		t.Errorf("no JSON line \"job started\" with the job's id, type, attempt 1, trace and span:\n%s", stderr.String())
	}
}
