package jobindex

import (
	"github.com/jobwire/jobwire/internal/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// indexerMetrics count what the indexer did with the messages it read.
type indexerMetrics struct {
	indexed, skipped, failed prometheus.Counter
	all                      metrics.Set
}

func newIndexerMetrics() *indexerMetrics {
	events := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jobwire_gateway_index_events_total",
		Help: "Status changes of jobs read by this gateway's indexer, by result: indexed, skipped (not a job's event), failed (tried again later).",
	}, []string{"result"})
	m := &indexerMetrics{
		indexed: events.WithLabelValues("indexed"),
		skipped: events.WithLabelValues("skipped"),
		failed:  events.WithLabelValues("failed"),
	}
	m.all = metrics.Set{events}
	return m
}
