package live

import (
	"context"

	"github.com/jobwire/jobwire/internal/tracing"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Option changes how NewNode makes a node.
type Option func(*Node)

// WithTracerProvider has the node record, in the job's trace, each final
// event it hands to its watchers (traceDelivery). Nil or the no-op
// provider: nothing (the default).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(n *Node) {
		if tracing.Enabled(tp) {
			n.tracer = tp.Tracer("github.com/jobwire/jobwire/services/gateway/live")
		}
	}
}

// traceDelivery records that the node handed the final event m (out) of a
// job to the watchers of key (the job, or the feed of every job): a span
// "deliver" in the trace the event's traceparent header names (the
// runner's attempt that stored it), with how many watchers got it. Only
// final events are traced, and only those that carry a trace context:
// one span per job and gateway, not one per progress event, which would
// cost more than the delivery itself. The span ends as the event is in
// every watcher's queue; each socket writes it soon after, on its own.
func (n *Node) traceDelivery(m *nats.Msg, key string, out Msg) {
	parent := jobs.ExtractTrace(context.Background(), m.Header)
	if !trace.SpanContextFromContext(parent).IsValid() {
		return
	}
	_, span := n.tracer.Start(parent, "deliver", deliverStart...)
	defer span.End()
	if !span.IsRecording() {
		return
	}
	n.mu.RLock()
	watchers := 0
	if t := n.topics[key]; t != nil {
		watchers = len(t.watchers)
	}
	n.mu.RUnlock()
	span.SetAttributes(
		attribute.String("messaging.system", "nats"),
		attribute.String("messaging.operation.type", "process"),
		attribute.String("messaging.destination.name", m.Subject),
		attribute.String("jobwire.job.id", out.jobID),
		attribute.Int64("jobwire.event.seq", int64(out.seq)),
		attribute.Bool("jobwire.feed.all", key == jobs.AllProgress),
		attribute.Int("jobwire.watchers", watchers),
	)
}

// deliverStart are the options of every delivery's span.
var deliverStart = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)}
