package worker

import (
	"context"

	"github.com/jobwire/jobwire/internal/tracing"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// tracerName is the instrumentation scope of the runner's spans.
const tracerName = "github.com/jobwire/jobwire/services/runner/worker"

// newTracer is tp's tracer, or nil when tracing is off (the runner then
// skips every tracing step with one branch).
func newTracer(tp trace.TracerProvider) trace.Tracer {
	if !tracing.Enabled(tp) {
		return nil
	}
	return tp.Tracer(tracerName)
}

// attemptStart are the options of every attempt's span.
var attemptStart = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)}

// startAttempt starts the span of one delivery of req: a child of the
// span that submitted the job (the request's traceparent header), or the
// root of a trace of its own when the request has none. Every attempt of
// a job is a child of the same submit. The events the attempt stores
// carry this span's trace context (jobs.PublishEvent reads it from the
// context), and so does the handler's context. A span that is sampled
// out gets no attributes: nothing would record them.
func (r *Runner) startAttempt(ctx context.Context, msg jetstream.Msg, req jobs.Request) (context.Context, trace.Span) {
	name, ok := r.spanNames[req.Type]
	if !ok {
		name = "run " + req.Type
	}
	ctx, span := r.tracer.Start(jobs.ExtractTrace(ctx, msg.Headers()), name, attemptStart...)
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", msg.Subject()),
			attribute.String("messaging.consumer.group.name", jobs.ConsumerName(req.Type)),
			attribute.String("jobwire.job.id", req.ID),
			attribute.String("jobwire.job.type", req.Type),
		)
		if meta, err := msg.Metadata(); err == nil {
			span.SetAttributes(attribute.Int64("jobwire.delivery", int64(meta.NumDelivered)))
		}
	}
	return ctx, span
}

// spanNames are the attempt spans' names by job type ("run <type>"),
// made once.
func spanNames(reg registry) map[string]string {
	names := make(map[string]string, len(reg))
	for typ := range reg {
		names[typ] = "run " + typ
	}
	return names
}

// endAttempt ends the span of a delivery with how its attempt ended: the
// kind of the last event it stored (jobwire.outcome: succeeded, failed,
// canceled, retrying; "none" when it stored no end, e.g. the job had
// ended before, or a newer attempt had taken it). A failed attempt's
// span has the error status, described by the error's code (never its
// message, which may quote the job's input).
func endAttempt(span trace.Span, x *execution) {
	defer span.End()
	if !span.IsRecording() {
		return
	}
	if x == nil {
		span.SetStatus(codes.Error, "cannot read the job's state")
		return
	}
	ev := x.w.ev
	outcome := "none"
	if ev.Attempt == x.attempt && (ev.Status.Terminal() || ev.Kind == jobs.KindRetrying) {
		outcome = string(ev.Kind)
	}
	span.SetAttributes(attribute.Int("jobwire.job.attempt", x.attempt), attribute.String("jobwire.outcome", outcome))
	if outcome != "none" && ev.Error != nil && ev.Kind != jobs.KindCanceled {
		span.SetAttributes(attribute.String("jobwire.error.code", ev.Error.Code))
		span.SetStatus(codes.Error, ev.Error.Code)
	}
}
