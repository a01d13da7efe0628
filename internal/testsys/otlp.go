package testsys

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	collector "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// OTLPReceiver is an OTLP/HTTP trace receiver on a test server: it keeps
// the spans a service exports to POST /v1/traces, as a collector would.
type OTLPReceiver struct {
	URL string // base URL: OTEL_EXPORTER_OTLP_ENDPOINT

	mu    sync.Mutex
	spans []ReceivedSpan
}

// ReceivedSpan is one exported span and the service.name of its resource.
type ReceivedSpan struct {
	*tracepb.Span
	Service string
}

// NewOTLPReceiver starts a receiver; it stops when the test ends.
func NewOTLPReceiver(t testing.TB) *OTLPReceiver {
	o := &OTLPReceiver{}
	srv := httptest.NewServer(o)
	t.Cleanup(srv.Close)
	o.URL = srv.URL
	return o
}

// Spans are the spans received so far.
func (o *OTLPReceiver) Spans() []ReceivedSpan {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]ReceivedSpan(nil), o.spans...)
}

// Named are the spans received so far with this name.
func (o *OTLPReceiver) Named(name string) []ReceivedSpan {
	var out []ReceivedSpan
	for _, s := range o.Spans() {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

func (o *OTLPReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var req collector.ExportTraceServiceRequest
	if err != nil || r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
		http.Error(w, "not an OTLP/HTTP trace export", http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.Key == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				o.spans = append(o.spans, ReceivedSpan{Span: s, Service: service})
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
}
