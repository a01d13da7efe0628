package httpapi

import (
	"context"
	"net/http"
	"net/textproto"

	"github.com/jobwire/jobwire/internal/tracing"
	"github.com/jobwire/jobwire/shared/jobs"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// tracerName is the instrumentation scope of the gateway's spans.
const tracerName = "github.com/jobwire/jobwire/services/gateway"

// traceSubmit makes a server span of every submit on route: a child of
// the caller's traceparent header (W3C Trace Context) when it sends one,
// else the root of a new trace. The submit stores the job under it
// (jobs.Enqueue puts its trace context on the job request and the queued
// event), so the runner's attempts continue the same trace. Only submits
// are traced: they start a job's trace; reads and watches would only add
// spans of their own. With tracing off it returns the handler as it is.
func traceSubmit(tp trace.TracerProvider, route string) func(http.Handler) http.Handler {
	if !tracing.Enabled(tp) {
		return func(next http.Handler) http.Handler { return next }
	}
	tr := tp.Tracer(tracerName)
	name := http.MethodPost + " " + route
	start := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			if len(r.Header[canonicalTraceparent]) > 0 {
				ctx = propagation.TraceContext{}.Extract(ctx, propagation.HeaderCarrier(r.Header))
			}
			ctx, span := tr.Start(ctx, name, start...)
			defer span.End()
			if !span.IsRecording() {
				// Sampled out: the trace context still travels with the
				// job (its headers say "not sampled"); nothing is recorded.
				next.ServeHTTP(w, r.WithContext(ctx))
				return
			}
			span.SetAttributes(attribute.String("http.request.method", r.Method), attribute.String("http.route", route))
			sw := &statusWriter{ResponseWriter: w}
			next.ServeHTTP(sw, r.WithContext(ctx))
			code := sw.status()
			span.SetAttributes(attribute.Int("http.response.status_code", code))
			if code >= 500 {
				span.SetStatus(codes.Error, http.StatusText(code))
			}
		})
	}
}

// canonicalTraceparent is how net/http keys the traceparent header.
var canonicalTraceparent = textproto.CanonicalMIMEHeaderKey("traceparent")

// noteJob names the submitted job on the submit's span, if it records.
func noteJob(ctx context.Context, snap jobs.Snapshot, replayed bool) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(attribute.String("jobwire.job.id", snap.ID), attribute.String("jobwire.job.type", snap.Type), attribute.Bool("jobwire.submit.replayed", replayed))
	}
}
