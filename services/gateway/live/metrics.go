package live

import (
	"errors"

	"github.com/jobwire/jobwire/internal/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// nodeMetrics are the live fan-out's figures; Node.Metrics exports them.
// Every series is made here, once: the per-event paths only add to them.
type nodeMetrics struct {
	received  prometheus.Counter // live events from NATS, before fan-out
	delivered prometheus.Counter // events written to watchers (added per flushed batch)
	coalesced prometheus.Counter // waiting events dropped for a newer one of the same job
	latency   prometheus.Histogram
	watches   prometheus.Gauge

	closedTooSlow, closedShutdown, closedClient, closedOther prometheus.Counter
	replayResume, replayRepair                               prometheus.Observer

	all metrics.Set
}

// Replay sizes: events queued by one replay.
var replayBuckets = prometheus.ExponentialBuckets(1, 4, 8) // 1 … 16384

// deliveryBuckets: from the runner storing an event to a watcher's
// connection taking it.
var deliveryBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newNodeMetrics(n *Node) *nodeMetrics {
	m := &nodeMetrics{
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jobwire_gateway_events_received_total",
			Help: "Live job events the gateway received from NATS (once each, however many watch the job).",
		}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jobwire_gateway_events_delivered_total",
			Help: "Job events written to watchers' connections (WebSocket or SSE), counted per watcher.",
		}),
		coalesced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jobwire_gateway_events_coalesced_total",
			Help: "Events a lagging watcher never got because a newer snapshot of the same job replaced them.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "jobwire_gateway_delivery_latency_seconds",
			Help:    "From a live event's time (set by the runner as it stores it) to its write to a watcher's connection.",
			Buckets: deliveryBuckets,
		}),
		watches: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jobwire_gateway_watches",
			Help: "Jobs watched, summed over the open sessions (the feed of every job counts as one).",
		}),
	}
	closed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jobwire_gateway_sessions_closed_total",
		Help: "Watch sessions (WebSocket or SSE) that ended, by reason: client (it left, or its job ended), too_slow, shutting_down, other.",
	}, []string{"reason"})
	m.closedClient = closed.WithLabelValues("client")
	m.closedTooSlow = closed.WithLabelValues("too_slow")
	m.closedShutdown = closed.WithLabelValues("shutting_down")
	m.closedOther = closed.WithLabelValues("other")
	replays := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "jobwire_gateway_replay_events",
		Help:    "Stored events one replay queued for a watcher, by reason: resume (the client named a seq), repair (a gap or a NATS reconnect).",
		Buckets: replayBuckets,
	}, []string{"reason"})
	m.replayResume = replays.WithLabelValues("resume")
	m.replayRepair = replays.WithLabelValues("repair")
	subscriptions := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "jobwire_gateway_subscriptions",
		Help: "NATS subscriptions the gateway holds: jobs that at least one of its watchers follows.",
	}, func() float64 {
		n.mu.RLock()
		defer n.mu.RUnlock()
		return float64(len(n.topics))
	})
	m.all = metrics.Set{m.received, m.delivered, m.coalesced, m.latency, m.watches, closed, replays, subscriptions}
	return m
}

// sessionClosed counts a session that ended for reason (Session.Reason).
func (m *nodeMetrics) sessionClosed(reason error) {
	switch {
	case reason == nil:
		m.closedClient.Inc()
	case errors.Is(reason, ErrTooSlow):
		m.closedTooSlow.Inc()
	case errors.Is(reason, ErrShuttingDown):
		m.closedShutdown.Inc()
	default:
		m.closedOther.Inc()
	}
}

// countDelivered adds n events written to a watcher; m may be nil.
func (m *nodeMetrics) countDelivered(n int) {
	if m != nil && n > 0 {
		m.delivered.Add(float64(n))
	}
}

// Metrics is the node's figures, for a process's registry.
func (n *Node) Metrics() prometheus.Collector { return n.metrics.all }
