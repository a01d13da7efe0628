package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/natstest"
	"github.com/jobwire/jobwire/internal/testsys"
	"github.com/jobwire/jobwire/services/runner/worker"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// One trace follows a job from the caller's traceparent on POST /api/jobs
// through a real retry to the gateway's delivery of its final event to a
// watcher, and a plain NATS subscriber of jobs.<id>.progress reads the
// same trace from every event's headers.
func TestOneTraceFromSubmitThroughRetryToDelivery(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	// The first attempt fails; the second waits until the test watches
	// the job, so its final event reaches the watcher live.
	release := make(chan struct{})
	flaky := worker.JobType{
		Name:  "flaky",
		Retry: worker.RetryPolicy{MaxAttempts: 3, BaseDelay: 10 * time.Millisecond, MaxDelay: 10 * time.Millisecond},
		Handler: func(ctx context.Context, job *worker.Job) (any, error) {
			if job.Attempt == 1 {
				return nil, errors.New("the first attempt fails")
			}
			select {
			case <-release:
				return "done", nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
	}
	sys := testsys.Start(t, testsys.WithTracerProvider(tp), testsys.WithTypes(flaky))

	// A plain NATS subscriber of every job's events, as another service.
	nc := natstest.Connect(t, sys.NATS)
	sub, err := nc.SubscribeSync(jobs.AllProgress)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	callerTrace, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	callerSpan, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	var snap jobs.Snapshot
	resp := sys.Do(t, "POST", "/api/jobs", "application/json", `{"type":"flaky"}`,
		map[string]string{"traceparent": fmt.Sprintf("00-%s-%s-01", callerTrace, callerSpan)}, &snap)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("submit: %d %+v", resp.StatusCode, snap)
	}
	ws := dialWS(t, sys)
	ws.send(`{"op":"watch","job_id":"` + snap.ID + `"}`)
	if m := ws.read(); m.Op != "event" || m.JobID != snap.ID {
		t.Fatalf("first message of the watch: %+v", m)
	}
	close(release)
	if evs := ws.readUntilTerminal(snap.ID); evs[len(evs)-1].Kind != jobs.KindSucceeded {
		t.Fatalf("the job ended %s, want succeeded", evs[len(evs)-1].Kind)
	}

	// The spans: submit → two attempts → delivery of the final event.
	spans := waitSpans(t, exp, func(s tracetest.SpanStubs) bool {
		return len(named(s, "run flaky")) == 2 && len(named(s, "deliver")) == 1
	})
	submits := named(spans, "POST /api/jobs")
	if len(submits) != 1 {
		t.Fatalf("%d submit spans, want 1: %v", len(submits), names(spans))
	}
	submit := submits[0]
	if submit.SpanContext.TraceID() != callerTrace || submit.Parent.SpanID() != callerSpan || submit.SpanKind != trace.SpanKindServer {
		t.Errorf("submit span: trace %s, parent %s, kind %v; want the caller's trace %s under its span %s, server",
			submit.SpanContext.TraceID(), submit.Parent.SpanID(), submit.SpanKind, callerTrace, callerSpan)
	}
	if got := attr(submit, "jobwire.job.id"); got != snap.ID {
		t.Errorf("submit span names job %q, want %s", got, snap.ID)
	}
	if got := attr(submit, "http.response.status_code"); got != "202" {
		t.Errorf("submit span: status code %q, want 202", got)
	}
	attempts := map[string]tracetest.SpanStub{}
	for _, s := range named(spans, "run flaky") {
		if s.SpanContext.TraceID() != callerTrace || s.Parent.SpanID() != submit.SpanContext.SpanID() {
			t.Errorf("attempt span %s: trace %s parent %s, want a child of the submit %s", attr(s, "jobwire.job.attempt"), s.SpanContext.TraceID(), s.Parent.SpanID(), submit.SpanContext.SpanID())
		}
		if attr(s, "jobwire.job.id") != snap.ID {
			t.Errorf("attempt span of job %q, want %s", attr(s, "jobwire.job.id"), snap.ID)
		}
		attempts[attr(s, "jobwire.job.attempt")] = s
	}
	first, second := attempts["1"], attempts["2"]
	if attr(first, "jobwire.outcome") != "retrying" || first.Status.Code != codes.Error || attr(first, "jobwire.error.code") != "handler_error" {
		t.Errorf("first attempt: outcome %q, status %+v, error code %q; want retrying, an error, handler_error", attr(first, "jobwire.outcome"), first.Status, attr(first, "jobwire.error.code"))
	}
	if attr(second, "jobwire.outcome") != "succeeded" || second.Status.Code == codes.Error {
		t.Errorf("second attempt: outcome %q, status %+v; want succeeded without error", attr(second, "jobwire.outcome"), second.Status)
	}
	deliver := named(spans, "deliver")[0]
	if deliver.SpanContext.TraceID() != callerTrace || deliver.Parent.SpanID() != second.SpanContext.SpanID() {
		t.Errorf("deliver span: trace %s parent %s, want a child of the second attempt %s", deliver.SpanContext.TraceID(), deliver.Parent.SpanID(), second.SpanContext.SpanID())
	}
	if attr(deliver, "jobwire.job.id") != snap.ID || attr(deliver, "jobwire.watchers") != "1" {
		t.Errorf("deliver span: job %q to %q watchers, want %s to 1", attr(deliver, "jobwire.job.id"), attr(deliver, "jobwire.watchers"), snap.ID)
	}

	// What the plain subscriber saw: every event names the span that
	// stored it, in the caller's trace.
	want := map[jobs.Kind][]trace.SpanID{
		jobs.KindQueued:    {submit.SpanContext.SpanID()},
		jobs.KindStarted:   {first.SpanContext.SpanID(), second.SpanContext.SpanID()},
		jobs.KindRetrying:  {first.SpanContext.SpanID()},
		jobs.KindSucceeded: {second.SpanContext.SpanID()},
	}
	got := map[jobs.Kind][]trace.SpanID{}
	for {
		m, err := sub.NextMsg(eventWait)
		if err != nil {
			t.Fatalf("the subscriber's events so far %v: %v", got, err)
		}
		ev := decodeEvent(t, m)
		if ev.JobID != snap.ID {
			continue
		}
		sc := trace.SpanContextFromContext(jobs.ExtractTrace(context.Background(), m.Header))
		if sc.TraceID() != callerTrace {
			t.Errorf("%s event (seq %d): trace %s (traceparent %q), want %s", ev.Kind, ev.Seq, sc.TraceID(), m.Header.Get(jobs.TraceparentHeader), callerTrace)
		}
		got[ev.Kind] = append(got[ev.Kind], sc.SpanID())
		if ev.Status.Terminal() {
			break
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("span of each event kind = %v, want %v", got, want)
	}
}

// Without a traceparent the submit starts a trace of its own, which the
// attempt continues.
func TestSubmitWithoutTraceparentStartsATrace(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	sys := testsys.Start(t, testsys.WithTracerProvider(tp))
	snap := sys.Submit(t, "demo", `{"steps":1,"step_ms":0}`)
	sys.WaitStatus(t, snap.ID, jobs.StatusSucceeded, 20*time.Second)
	spans := waitSpans(t, exp, func(s tracetest.SpanStubs) bool { return len(named(s, "run demo")) == 1 })
	submit, run := named(spans, "POST /api/jobs")[0], named(spans, "run demo")[0]
	if submit.Parent.IsValid() || run.Parent.SpanID() != submit.SpanContext.SpanID() || run.SpanContext.TraceID() != submit.SpanContext.TraceID() {
		t.Errorf("submit %s (parent %v), run %s under %s: want a new trace whose root is the submit", submit.SpanContext.TraceID(), submit.Parent.SpanID(), run.SpanContext.TraceID(), run.Parent.SpanID())
	}
}

func decodeEvent(t *testing.T, m *nats.Msg) jobs.Event {
	t.Helper()
	var ev jobs.Event
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		t.Fatalf("%s: %v", m.Data, err)
	}
	return ev
}

// waitSpans polls the exporter until done holds for its spans.
func waitSpans(t *testing.T, exp *tracetest.InMemoryExporter, done func(tracetest.SpanStubs) bool) tracetest.SpanStubs {
	t.Helper()
	deadline := time.Now().Add(eventWait)
	for {
		spans := exp.GetSpans()
		if done(spans) {
			return spans
		}
		if time.Now().After(deadline) {
			t.Fatalf("spans within %v: %v", eventWait, names(spans))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func named(spans tracetest.SpanStubs, name string) tracetest.SpanStubs {
	var out tracetest.SpanStubs
	for _, s := range spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

func names(spans tracetest.SpanStubs) string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return strings.Join(out, ", ")
}

// attr is the value of span attribute key, as text ("" when absent).
func attr(s tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == attribute.Key(key) {
			return kv.Value.String()
		}
	}
	return ""
}

// With every trace sampled out nothing is recorded, but the trace context
// still travels, flagged "not sampled": the job's events all carry one
// trace, so a subscriber (or a service that samples differently) can
// still follow it.
func TestSampledOutTraceStillTravels(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()), sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	sys := testsys.Start(t, testsys.WithTracerProvider(tp))
	nc := natstest.Connect(t, sys.NATS)
	sub, err := nc.SubscribeSync(jobs.AllProgress)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	snap := sys.Submit(t, "demo", `{"steps":1,"step_ms":0}`)
	traces := map[trace.TraceID]bool{}
	for {
		m, err := sub.NextMsg(eventWait)
		if err != nil {
			t.Fatal(err)
		}
		ev := decodeEvent(t, m)
		if ev.JobID != snap.ID {
			continue
		}
		sc := trace.SpanContextFromContext(jobs.ExtractTrace(context.Background(), m.Header))
		if !sc.IsValid() || sc.IsSampled() {
			t.Errorf("%s event: traceparent %q, want one flagged not sampled", ev.Kind, m.Header.Get(jobs.TraceparentHeader))
		}
		traces[sc.TraceID()] = true
		if ev.Status.Terminal() {
			break
		}
	}
	if len(traces) != 1 {
		t.Errorf("the job's events name %d traces, want 1", len(traces))
	}
	if spans := exp.GetSpans(); len(spans) != 0 {
		t.Errorf("spans recorded while sampled out: %s", names(spans))
	}
}
