package worker

import (
	"context"
	"errors"
	"time"

	"github.com/jobwire/jobwire/internal/metrics"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// outcome is how one attempt (a delivery that ran its handler, or tried
// to) ended: the outcome label of jobwire_runner_attempts_total.
type outcome int

const (
	outcomeNone           outcome = iota // not an attempt (or not ended yet)
	outcomeSucceeded                     // the job succeeded
	outcomeFailed                        // the job failed (no attempt left, or a permanent error)
	outcomeRetried                       // failed; another attempt is scheduled
	outcomeCanceled                      // stopped by a cancel request
	outcomeHandedBack                    // the runner shut down: back to the queue, not used up
	outcomeSuperseded                    // a newer attempt owns the job (fenced out)
	outcomeEndedElsewhere                // the job ended meanwhile (canceled through the gateway)
	outcomeStoreFailed                   // its events could not be stored: back to the queue
	outcomeDuplicate                     // already running on this runner: handed back
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"", "succeeded", "failed", "retried", "canceled", "handed_back", "superseded", "ended_elsewhere", "store_failed", "duplicate"}

// runnerMetrics are the runner's figures; Runner.Metrics exports them.
// Every series of a registered type (and of "unknown") is made at New:
// the per-job paths only add to them.
type runnerMetrics struct {
	byType  map[string]*typeMetrics
	unknown *typeMetrics

	heartbeats, heartbeatFailures prometheus.Counter
	poisonUndecodable, poisonInvalidID,
	poisonUnknownType, poisonMaxAttempts prometheus.Counter

	all metrics.Set
}

// typeMetrics are one job type's series.
type typeMetrics struct {
	jobsStarted                                 prometheus.Counter
	succeeded, failed, canceled                 prometheus.Counter // jobs finished, by final status
	attempts                                    [numOutcomes]prometheus.Counter
	runDuration, queueWait                      prometheus.Observer
	running                                     prometheus.Gauge
	panics, timeouts, cancels, fencedWritesLost prometheus.Counter
}

// runBuckets: one attempt's run time, from milliseconds to an hour.
var runBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}

// waitBuckets: from a job's submission to its first attempt's start.
var waitBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}

// Queue readings (consumer info) serve scrapes for queueInfoMaxAge;
// queueInfoTimeout bounds one reading of every type's consumer.
const (
	queueInfoMaxAge  = 5 * time.Second
	queueInfoTimeout = 3 * time.Second
)

func newRunnerMetrics(types []string, concurrency int, js jetstream.JetStream, queue jetstream.Stream) *runnerMetrics {
	started := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jobwire_runner_jobs_started_total",
		Help: "Jobs whose first attempt started on this runner, by type.",
	}, []string{"type"})
	finished := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jobwire_runner_jobs_finished_total",
		Help: "Jobs this runner ended, by type and final status (succeeded, failed, canceled).",
	}, []string{"type", "status"})
	attempts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jobwire_runner_attempts_total",
		Help: "Attempts this runner ran, by type and outcome: succeeded, failed, retried, canceled, handed_back, superseded, ended_elsewhere, store_failed, duplicate.",
	}, []string{"type", "outcome"})
	runDuration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "jobwire_runner_run_duration_seconds",
		Help:    "Time one attempt's handler ran, by type.",
		Buckets: runBuckets,
	}, []string{"type"})
	queueWait := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "jobwire_runner_queue_wait_seconds",
		Help:    "Time from a job's submission to the start of its first attempt, by type.",
		Buckets: waitBuckets,
	}, []string{"type"})
	running := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "jobwire_runner_jobs_running",
		Help: "Jobs running on this runner now, by type (compare with jobwire_runner_concurrency).",
	}, []string{"type"})
	perType := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"type"})
	}
	panics := perType("jobwire_runner_panics_total", "Handler panics (each fails or retries its attempt), by type.")
	timeouts := perType("jobwire_runner_timeouts_total", "Attempts stopped at the job type's timeout, by type.")
	cancels := perType("jobwire_runner_cancels_total", "Running attempts stopped by a cancel request, by type.")
	fenced := perType("jobwire_runner_fenced_writes_lost_total", "Event writes refused because another writer stored an event of the job first (a newer attempt, a cancel): the write is re-read and retried or the attempt stops, by type.")
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "jobwire_runner_job_type_info",
		Help: "1 for every job type this runner serves.",
	}, []string{"type"})
	poison := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jobwire_runner_poison_messages_total",
		Help: "Job requests that could not run and were ended, never retried, by reason: undecodable, invalid_id (terminated), unknown_type, max_attempts (the job failed).",
	}, []string{"reason"})
	heartbeats := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "jobwire_runner_heartbeats_total",
		Help: "Heartbeats (in-progress acks) sent for running jobs, so they are not redelivered.",
	})
	heartbeatFailures := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "jobwire_runner_heartbeat_failures_total",
		Help: "Heartbeats that could not be sent (NATS unreachable): a job whose heartbeats keep failing is redelivered after ACK_WAIT.",
	})
	concurrencyGauge := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "jobwire_runner_concurrency",
		Help: "Jobs this runner runs at once at most (RUNNER_CONCURRENCY).",
	})
	concurrencyGauge.Set(float64(concurrency))

	m := &runnerMetrics{
		byType:            map[string]*typeMetrics{},
		heartbeats:        heartbeats,
		heartbeatFailures: heartbeatFailures,
		poisonUndecodable: poison.WithLabelValues("undecodable"),
		poisonInvalidID:   poison.WithLabelValues("invalid_id"),
		poisonUnknownType: poison.WithLabelValues("unknown_type"),
		poisonMaxAttempts: poison.WithLabelValues("max_attempts"),
	}
	resolve := func(typ string) *typeMetrics {
		tm := &typeMetrics{
			jobsStarted: started.WithLabelValues(typ),
			succeeded:   finished.WithLabelValues(typ, string(jobs.StatusSucceeded)),
			failed:      finished.WithLabelValues(typ, string(jobs.StatusFailed)),
			canceled:    finished.WithLabelValues(typ, string(jobs.StatusCanceled)),
			runDuration: runDuration.WithLabelValues(typ),
			queueWait:   queueWait.WithLabelValues(typ),
			running:     running.WithLabelValues(typ),
			panics:      panics.WithLabelValues(typ), timeouts: timeouts.WithLabelValues(typ),
			cancels: cancels.WithLabelValues(typ), fencedWritesLost: fenced.WithLabelValues(typ),
		}
		for o := outcomeSucceeded; o < numOutcomes; o++ {
			tm.attempts[o] = attempts.WithLabelValues(typ, outcomeNames[o])
		}
		return tm
	}
	for _, typ := range types {
		m.byType[typ] = resolve(typ)
		info.WithLabelValues(typ).Set(1)
	}
	// A job of a type this runner does not serve (a request stored on
	// its subject by hand) fails: counted under one fixed label.
	m.unknown = &typeMetrics{
		succeeded:        finished.WithLabelValues(metrics.UnknownType, string(jobs.StatusSucceeded)),
		failed:           finished.WithLabelValues(metrics.UnknownType, string(jobs.StatusFailed)),
		canceled:         finished.WithLabelValues(metrics.UnknownType, string(jobs.StatusCanceled)),
		fencedWritesLost: fenced.WithLabelValues(metrics.UnknownType),
	}
	m.all = metrics.Set{started, finished, attempts, runDuration, queueWait, running, panics, timeouts, cancels, fenced,
		info, poison, heartbeats, heartbeatFailures, concurrencyGauge, newQueueMetrics(types, js, queue)}
	return m
}

// forType is the series of job type typ: a registered type's, or the
// "unknown" ones.
func (m *runnerMetrics) forType(typ string) *typeMetrics {
	if tm := m.byType[typ]; tm != nil {
		return tm
	}
	return m.unknown
}

// attemptEnded counts an attempt that ended with o.
func (tm *typeMetrics) attemptEnded(o outcome) {
	if c := tm.attempts[o]; c != nil {
		c.Inc()
	}
}

// finished counts a job that ended with status, the outcome of the
// attempt that ended it.
func (tm *typeMetrics) finished(status jobs.Status) outcome {
	switch status {
	case jobs.StatusSucceeded:
		tm.succeeded.Inc()
		return outcomeSucceeded
	case jobs.StatusFailed:
		tm.failed.Inc()
		return outcomeFailed
	case jobs.StatusCanceled:
		tm.canceled.Inc()
		return outcomeCanceled
	}
	return outcomeNone
}

// newQueueMetrics reads each type's consumers on the JOBS stream, one per
// priority (one CONSUMER.INFO request each, and one STREAM.MSG.GET for the
// oldest job waiting when jobs wait), at most every queueInfoMaxAge, and
// reports their sums (the oldest age: the largest). Every
// runner of a type reports the same consumer: aggregate with max by
// (type), not sum.
func newQueueMetrics(types []string, js jetstream.JetStream, queue jetstream.Stream) prometheus.Collector {
	label := []string{"type"}
	pending := prometheus.NewDesc("jobwire_runner_queue_pending_jobs",
		"Jobs of the type waiting in the queue, not yet taken by any runner (the consumer's pending count).", label, nil)
	ackPending := prometheus.NewDesc("jobwire_runner_queue_ack_pending_jobs",
		"Jobs of the type taken by a runner and not yet acknowledged: running, or waiting for a retry's delay.", label, nil)
	redelivered := prometheus.NewDesc("jobwire_runner_queue_redelivered_jobs",
		"Jobs of the type delivered more than once and not yet acknowledged (retries, runners that died).", label, nil)
	oldest := prometheus.NewDesc("jobwire_runner_queue_oldest_pending_age_seconds",
		"Age of the oldest job of the type that no runner has taken yet; 0 when none waits.", label, nil)
	return &metrics.Cached{
		Descs: []*prometheus.Desc{pending, ackPending, redelivered, oldest}, MaxAge: queueInfoMaxAge, Timeout: queueInfoTimeout,
		Errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jobwire_runner_queue_read_errors_total",
			Help: "Readings of the job types' consumers that failed (their jobwire_runner_queue_* figures are then absent).",
		}),
		Read: func(ctx context.Context) ([]prometheus.Metric, error) {
			var out []prometheus.Metric
			var errs []error
			for _, typ := range types {
				var q queueReading
				var err error
				for _, p := range jobs.Priorities {
					if err = q.add(ctx, js, queue, p, typ); err != nil {
						break
					}
				}
				if err != nil {
					errs = append(errs, err)
					continue
				}
				out = append(out,
					prometheus.MustNewConstMetric(pending, prometheus.GaugeValue, float64(q.pending), typ),
					prometheus.MustNewConstMetric(ackPending, prometheus.GaugeValue, float64(q.ackPending), typ),
					prometheus.MustNewConstMetric(redelivered, prometheus.GaugeValue, float64(q.redelivered), typ),
					prometheus.MustNewConstMetric(oldest, prometheus.GaugeValue, q.oldest, typ))
			}
			return out, errors.Join(errs...)
		},
	}
}

// queueReading is one job type's queue figures: the sums over its
// consumers (one per priority), and the age of the oldest job waiting in
// any of them.
type queueReading struct {
	pending, ackPending, redelivered uint64
	oldest                           float64
}

// add reads the consumer of type typ's requests of priority p.
func (q *queueReading) add(ctx context.Context, js jetstream.JetStream, queue jetstream.Stream, p int, typ string) error {
	cons, err := js.Consumer(ctx, jobs.Stream, jobs.PriorityConsumerName(p, typ))
	if err != nil {
		return err
	}
	info := cons.CachedInfo()
	if info.NumPending > 0 {
		// The oldest job not delivered yet: the first on the consumer's
		// subjects after the last one delivered.
		msg, err := queue.GetMsg(ctx, info.Delivered.Stream+1, jetstream.WithGetMsgSubject(jobs.PriorityQueueFilter(p, typ)))
		switch {
		case err == nil:
			q.oldest = max(q.oldest, time.Since(msg.Time).Seconds())
		case !errors.Is(err, jetstream.ErrMsgNotFound): // taken meanwhile: none waits
			return err
		}
	}
	q.pending += info.NumPending
	q.ackPending += uint64(info.NumAckPending)
	q.redelivered += uint64(info.NumRedelivered)
	return nil
}

// Metrics is the runner's figures, for a process's registry.
func (r *Runner) Metrics() prometheus.Collector { return r.metrics.all }
