package jobs

import (
	"context"
	"net/textproto"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
)

// The W3C Trace Context headers (https://www.w3.org/TR/trace-context/)
// that job requests and stored events carry as NATS headers when the
// service that wrote them traces: the span of the submit on a request and
// on the queued event, the span of the runner's attempt on the events it
// stores. JetStream republishes an event's headers with it on
// jobs.<id>.progress, so any subscriber can continue the job's trace
// (ExtractTrace). A message written without tracing has neither header.
const (
	TraceparentHeader = "traceparent"
	TracestateHeader  = "tracestate"
)

// traceContext is the W3C propagator; it has no state.
var traceContext propagation.TraceContext

// InjectTrace writes the span context that ctx carries into h
// (traceparent, and tracestate when it has one). It writes nothing when
// ctx carries no valid span context.
func InjectTrace(ctx context.Context, h nats.Header) {
	traceContext.Inject(ctx, headerCarrier(h))
}

// ExtractTrace returns ctx carrying the remote span context that h names
// (its traceparent and tracestate), to start a span of the same trace
// under it; ctx as it is when h has no valid traceparent. Header names
// are matched exactly, then in the canonical form ("Traceparent") that
// HTTP-minded injectors write.
func ExtractTrace(ctx context.Context, h nats.Header) context.Context {
	if len(h) == 0 {
		return ctx
	}
	return traceContext.Extract(ctx, headerCarrier(h))
}

// headerCarrier adapts nats.Header (whose keys are case-sensitive) to the
// propagation API.
type headerCarrier nats.Header

func (c headerCarrier) Get(key string) string {
	if v := nats.Header(c).Get(key); v != "" {
		return v
	}
	return nats.Header(c).Get(textproto.CanonicalMIMEHeaderKey(key))
}

func (c headerCarrier) Set(key, value string) { nats.Header(c).Set(key, value) }

func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
