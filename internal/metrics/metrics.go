// Package metrics is how jobwire's processes export Prometheus metrics:
// a registry per process with the Go runtime and process collectors
// (NewRegistry), served at /metrics on a listener of its own (Start), and
// Set, which lets a core object (live.Node, jobops.Service, the HTTP API,
// worker.Runner) hand its metrics over as one collector. The metrics
// themselves live beside the object that owns them, in its metrics.go;
// docs/operations.md lists them all.
package metrics

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jobwire/jobwire/internal/sideserver"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Set is several collectors as one.
type Set []prometheus.Collector

// Describe describes every collector of s.
func (s Set) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range s {
		c.Describe(ch)
	}
}

// Collect collects every collector of s.
func (s Set) Collect(ch chan<- prometheus.Metric) {
	for _, c := range s {
		c.Collect(ch)
	}
}

// NewRegistry is a process's registry: the Go runtime's and the process's
// collectors (go_*, process_*), and whatever the process registers. One
// per process, never the global default, so tests that run several
// systems in one binary keep their figures apart.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Register registers each collector in reg (a process's registry).
func Register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	return nil
}

// Handler serves reg's metrics in Prometheus' text format at /metrics.
func Handler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		Registry:            reg, // promhttp_metric_handler_errors_total
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	return mux
}

// Start listens on addr and serves Handler(reg). stop closes the server
// and waits for it.
func Start(addr string, reg *prometheus.Registry, log *slog.Logger) (bound net.Addr, stop func(), err error) {
	return sideserver.Start(addr, Handler(reg), "metrics server", log)
}

// UnknownType is the type label of jobs whose type is not registered: a
// made-up type never adds a series.
const UnknownType = "unknown"
