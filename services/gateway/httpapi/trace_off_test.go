package httpapi

import (
	"net/http"
	"reflect"
	"testing"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// With tracing off the submit routes run their handler as it is: no
// wrapper, no span, nothing read from the request.
func TestTraceSubmitOffAddsNothing(t *testing.T) {
	t.Parallel()
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	for _, tp := range []trace.TracerProvider{nil, noop.NewTracerProvider()} {
		if got := traceSubmit(tp, "/api/jobs")(h); reflect.ValueOf(got).Pointer() != reflect.ValueOf(h).Pointer() {
			t.Errorf("tracer provider %T: the handler is wrapped", tp)
		}
	}
}
