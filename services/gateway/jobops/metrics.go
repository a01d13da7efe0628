package jobops

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jobwire/jobwire/internal/metrics"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// opsMetrics are the job rules' figures; Service.Metrics exports them.
// The type label is a registered type's name, or metrics.UnknownType.
type opsMetrics struct {
	submissions *prometheus.CounterVec // type, outcome, reason

	mu     sync.RWMutex
	byType map[string]*typeCounters // registered types seen so far

	queue *metrics.Cached
	all   metrics.Set
}

// typeCounters are one type's submission counters, resolved once.
type typeCounters struct{ accepted, replayed prometheus.Counter }

// queueInfoMaxAge is how long a reading of the queue stream serves
// scrapes; queueInfoTimeout bounds one reading.
const (
	queueInfoMaxAge  = 5 * time.Second
	queueInfoTimeout = 3 * time.Second
)

func newOpsMetrics(ctx context.Context, stream jetstream.Stream, cat *catalog) *opsMetrics {
	m := &opsMetrics{
		submissions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jobwire_gateway_submissions_total",
			Help: "Job submissions that reached the job rules, by type, outcome (accepted, replayed: an Idempotency-Key repeated, rejected) and reason of a rejection.",
		}, []string{"type", "outcome", "reason"}),
		byType: map[string]*typeCounters{},
	}
	waiting := prometheus.NewDesc("jobwire_gateway_queue_newest_waiting_age_seconds",
		"Age of the type's newest job if it has not started yet (still queued), else 0, by registered type, read from the JOBS stream at most every 5 s (two direct gets per type); includes types no runner serves.",
		[]string{"type"}, nil)
	m.queue = &metrics.Cached{
		Descs: []*prometheus.Desc{waiting}, MaxAge: queueInfoMaxAge, Timeout: queueInfoTimeout, Parent: ctx,
		Errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jobwire_gateway_queue_read_errors_total",
			Help: "Readings of the JOBS stream's newest job per type that failed (jobwire_gateway_queue_newest_waiting_age_seconds is then absent).",
		}),
		Read: func(ctx context.Context) ([]prometheus.Metric, error) {
			return readNewestWaiting(ctx, stream, cat, waiting)
		},
	}
	m.all = metrics.Set{m.submissions, m.queue}
	return m
}

// readNewestWaiting reads, for every registered type, its newest job
// request and that job's last message: if the job has not started, its
// age. The stream keeps requests after they ran, so counting them would
// grow with the store; the newest one is two reads per type, and a job
// that waits there means the type's queue is not being served.
func readNewestWaiting(ctx context.Context, stream jetstream.Stream, cat *catalog, desc *prometheus.Desc) ([]prometheus.Metric, error) {
	types := cat.list()
	out := make([]prometheus.Metric, 0, len(types))
	var errs []error
	for _, t := range types {
		age := 0.0
		req, err := stream.GetLastMsgForSubject(ctx, jobs.QueueFilter(t.Type))
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			errs = append(errs, err)
			continue
		default:
			_, id, _ := jobs.JobOfSubject(req.Subject)
			last, err := stream.GetLastMsgForSubject(ctx, jobs.JobSubjects(id))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if last.Sequence == req.Sequence { // nothing stored after the request: not started
				age = max(time.Since(req.Time).Seconds(), 0)
			}
		}
		out = append(out, prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, age, t.Type))
	}
	return out, errors.Join(errs...)
}

// forType is the counters of registered type typ, made on first use.
func (m *opsMetrics) forType(typ string) *typeCounters {
	m.mu.RLock()
	c := m.byType[typ]
	m.mu.RUnlock()
	if c != nil {
		return c
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c = m.byType[typ]; c == nil {
		c = &typeCounters{
			accepted: m.submissions.WithLabelValues(typ, "accepted", ""),
			replayed: m.submissions.WithLabelValues(typ, "replayed", ""),
		}
		m.byType[typ] = c
	}
	return c
}

// submitted counts the end of one Submit: of a registered type (known),
// replayed or not, or refused with err.
func (m *opsMetrics) submitted(typ string, known, replayed bool, err error) {
	switch {
	case err != nil:
		if !known {
			typ = metrics.UnknownType
		}
		m.submissions.WithLabelValues(typ, "rejected", rejectReason(err)).Inc()
	case replayed:
		m.forType(typ).replayed.Inc()
	default:
		m.forType(typ).accepted.Inc()
	}
}

// rejectReason names why Submit refused, from its error (errors.go).
func rejectReason(err error) string {
	var (
		invalid *InvalidArgumentError
		unknown *UnknownTypeError
		input   *InvalidInputError
		down    *UnavailableError
	)
	switch {
	case errors.As(err, &invalid):
		return "invalid_argument"
	case errors.As(err, &unknown):
		return "unknown_type"
	case errors.As(err, &input):
		return "invalid_input"
	case errors.Is(err, ErrInvalidIdempotencyKey):
		return "invalid_idempotency_key"
	case errors.Is(err, ErrIdempotencyKeyReused):
		return "idempotency_key_reused"
	case errors.Is(err, ErrInProgress):
		return "in_progress"
	case errors.As(err, &down):
		return "unavailable"
	}
	return "internal"
}

// Metrics is the job rules' figures, for a process's registry.
func (s *Service) Metrics() prometheus.Collector {
	return metrics.Set{s.metrics.all, s.indexer.Metrics()}
}
