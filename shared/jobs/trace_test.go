package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
)

// testSpanContext is a sampled span context with a tracestate.
func testSpanContext(t *testing.T) trace.SpanContext {
	t.Helper()
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ts, err := trace.ParseTraceState("vendor=abc")
	if err != nil {
		t.Fatal(err)
	}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, TraceState: ts})
}

func TestTraceHeadersRoundTrip(t *testing.T) {
	t.Parallel()
	sc := testSpanContext(t)
	h := nats.Header{}
	jobs.InjectTrace(trace.ContextWithSpanContext(context.Background(), sc), h)
	if got, want := h.Get(jobs.TraceparentHeader), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"; got != want {
		t.Errorf("traceparent = %q, want %q (headers %v)", got, want, h)
	}
	if got := h.Get(jobs.TracestateHeader); got != "vendor=abc" {
		t.Errorf("tracestate = %q, want vendor=abc", got)
	}
	back := trace.SpanContextFromContext(jobs.ExtractTrace(context.Background(), h))
	if !back.IsRemote() || back.TraceID() != sc.TraceID() || back.SpanID() != sc.SpanID() || !back.IsSampled() || back.TraceState().Get("vendor") != "abc" {
		t.Errorf("extracted %+v, want the injected span context, remote", back)
	}
	// Headers written by an HTTP-minded injector (canonical keys) are read too.
	canon := nats.Header{"Traceparent": {h.Get(jobs.TraceparentHeader)}}
	if got := trace.SpanContextFromContext(jobs.ExtractTrace(context.Background(), canon)); got.TraceID() != sc.TraceID() {
		t.Errorf("canonical header: extracted trace %s, want %s", got.TraceID(), sc.TraceID())
	}
	// Nothing to inject, nothing to extract.
	empty := nats.Header{}
	jobs.InjectTrace(context.Background(), empty)
	if len(empty) != 0 {
		t.Errorf("a context without a span wrote headers %v", empty)
	}
	for _, h := range []nats.Header{nil, {}, {"traceparent": {"garbage"}}} {
		if got := trace.SpanContextFromContext(jobs.ExtractTrace(context.Background(), h)); got.IsValid() {
			t.Errorf("headers %v gave span context %+v", h, got)
		}
	}
}

// Without a span in the context (tracing off), publishing costs no
// allocation for tracing.
func TestTraceHeaderFreeWithoutSpan(t *testing.T) {
	ctx := context.Background()
	h := nats.Header{}
	if allocs := testing.AllocsPerRun(100, func() {
		jobs.InjectTrace(ctx, h)
		if len(h) != 0 {
			t.Fatal("a header without a span")
		}
	}); allocs != 0 {
		t.Errorf("InjectTrace without a span: %v allocations, want 0", allocs)
	}
}

// A job request and the events stored under a span carry its trace
// context, and the stream's republish on jobs.<id>.progress keeps it, so a
// plain NATS subscriber can join the trace; an event stored without a
// span has no trace header.
func TestTraceContextReachesRequestAndProgressSubscribers(t *testing.T) {
	t.Parallel()
	ctx, nc, js, streams := withTopology(t)
	sc := testSpanContext(t)
	req := jobs.Request{ID: jobs.NewID(time.Now()), Type: "demo", CreatedAt: time.Now(), Owner: "user:alice"}
	sub, err := nc.SubscribeSync(jobs.ProgressSubject(req.ID))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	queued, err := jobs.Enqueue(trace.ContextWithSpanContext(ctx, sc), js, req)
	if err != nil {
		t.Fatal(err)
	}
	want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"

	stored, err := streams.Events.GetLastMsgForSubject(ctx, jobs.QueueSubject("demo", req.ID))
	if err != nil {
		t.Fatal(err)
	}
	if got := stored.Header.Get(jobs.TraceparentHeader); got != want {
		t.Errorf("stored request: traceparent %q, want %q (headers %v)", got, want, stored.Header)
	}
	if stored.Header.Get(jetstream.MsgIDHeader) != req.ID {
		t.Errorf("stored request lost its Nats-Msg-Id: %v", stored.Header)
	}

	live, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := live.Header.Get(jobs.TraceparentHeader); got != want {
		t.Errorf("queued event on %s: traceparent %q, want %q (headers %v)", live.Subject, got, want, live.Header)
	}
	if got := live.Header.Get(jobs.TracestateHeader); got != "vendor=abc" {
		t.Errorf("queued event: tracestate %q, want vendor=abc", got)
	}
	if got := trace.SpanContextFromContext(jobs.ExtractTrace(ctx, live.Header)); got.TraceID() != sc.TraceID() {
		t.Errorf("the subscriber extracts trace %s, want %s", got.TraceID(), sc.TraceID())
	}

	_, lastSeq, err := jobs.LastEvent(ctx, streams.Events, req.ID)
	if err != nil {
		t.Fatal(err)
	}
	done := queued.Next(jobs.KindSucceeded, time.Now())
	done.Status = jobs.StatusSucceeded
	if _, err := jobs.PublishEvent(ctx, js, done, lastSeq); err != nil {
		t.Fatal(err)
	}
	untraced, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if untraced.Header.Get(jobs.TraceparentHeader) != "" || untraced.Header.Get(jetstream.SequenceHeader) == "" {
		t.Errorf("event stored without a span: headers %v, want the stream's and no traceparent", untraced.Header)
	}
}
