package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jobwire/jobwire/internal/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// httpMetrics are the transport's figures; Gateway.Metrics exports them
// with the live node's and the job rules'. Label values come from fixed
// sets: a route pattern of routes.go (never a path), a known method, a
// status code.
type httpMetrics struct {
	requests *prometheus.CounterVec   // route, method, code
	duration *prometheus.HistogramVec // route, method

	// Refusals by limit (429s), resolved once.
	submitOwner, submitAddr, newSession, connsOwner, connsAddr, connsGateway prometheus.Counter

	websockets, sseStreams prometheus.Gauge

	all metrics.Set
}

// durationBuckets: an API request's time in the gateway.
var durationBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newHTTPMetrics() *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jobwire_gateway_http_requests_total",
			Help: "HTTP requests answered, by route pattern (e.g. /api/jobs/{id}; unmatched for no route), method and status code. A WebSocket counts once, when it is accepted (101).",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "jobwire_gateway_http_request_duration_seconds",
			Help:    "Time from a request's headers to the end of its answer, by route pattern and method; WebSockets and SSE streams are left out (they last as long as the client wants).",
			Buckets: durationBuckets,
		}, []string{"route", "method"}),
	}
	limited := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jobwire_gateway_rate_limited_total",
		Help: "Requests refused with 429 by a limit: submit_owner, submit_address (SUBMIT_RATE, ADDR_SUBMIT_RATE), new_session (NEW_SESSION_RATE), connections_owner, connections_address, connections_gateway (MAX_CONNS_PER_OWNER, ADDR_MAX_CONNS, MAX_CONNS).",
	}, []string{"limit"})
	m.submitOwner = limited.WithLabelValues("submit_owner")
	m.submitAddr = limited.WithLabelValues("submit_address")
	m.newSession = limited.WithLabelValues("new_session")
	m.connsOwner = limited.WithLabelValues("connections_owner")
	m.connsAddr = limited.WithLabelValues("connections_address")
	m.connsGateway = limited.WithLabelValues("connections_gateway")
	conns := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "jobwire_gateway_connections",
		Help: "Open watch connections, by transport (websocket, sse).",
	}, []string{"transport"})
	m.websockets = conns.WithLabelValues("websocket")
	m.sseStreams = conns.WithLabelValues("sse")
	m.all = metrics.Set{m.requests, m.duration, limited, conns}
	return m
}

// streamingRoutes answer for as long as the client stays: counted, but
// left out of the duration histogram.
var streamingRoutes = map[string]bool{"/ws": true, "/api/jobs/{id}/events": true}

// instrument counts every request the router answers, by the pattern of
// the route that answered it (known once it has run).
func (m *httpMetrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		method := methodLabel(r.Method)
		m.requests.WithLabelValues(route, method, codeLabel(sw.status())).Inc()
		if !streamingRoutes[route] {
			m.duration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
		}
	})
}

// statusWriter remembers the status code of the answer. Unwrap gives
// http.ResponseController (deadlines, flushes, the WebSocket's hijack)
// the writer underneath.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK // nothing written: net/http sends 200
	}
	return w.code
}

// methodLabel is the method, or "other" for one the API does not know.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return method
	}
	return "other"
}

// codeLabels are the status codes as label values, made once.
var codeLabels = func() (t [600]string) {
	for i := 100; i < len(t); i++ {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

func codeLabel(code int) string {
	if code < 100 || code >= len(codeLabels) {
		return "other"
	}
	return codeLabels[code]
}

// Metrics is the gateway's figures: its HTTP API's, its live node's and
// its job rules', for a process's registry.
func (g *Gateway) Metrics() prometheus.Collector {
	return metrics.Set{g.metrics.all, g.live.Metrics(), g.ops.Metrics()}
}
