package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/jobwire/jobwire/internal/tracing"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// storeTimeout bounds one attempt to store an event.
const storeTimeout = 5 * time.Second

var (
	// errSuperseded means a newer attempt of the job has stored events
	// since this one last did: this attempt must stop and leave the
	// message alone.
	errSuperseded = errors.New("job attempt superseded")
	// errJobEnded means the job reached a final state elsewhere (it was
	// canceled, or an earlier delivery finished it): stop and ack.
	errJobEnded = errors.New("job already ended")
	// errTimeout is the cause of a handler context cancelled at the
	// job type's deadline.
	errTimeout = errors.New("job ran out of time")
)

// cancelRequested is the cause of a handler context cancelled by a
// cancel request.
type cancelRequested struct{ req jobs.CancelRequest }

func (c *cancelRequested) Error() string { return jobs.CanceledError(c.req).Message }

// execution is one delivery of a job request being run: the message it
// settles, the writer of the job's events, and the attempt's state. Its
// methods end the attempt (report*) and settle the message; each is called
// with the context events are stored under, which outlives the runner's
// stop (an attempt's end is stored even while the runner shuts down).
type execution struct {
	r       *Runner
	msg     jetstream.Msg
	w       *writer
	log     *slog.Logger
	attempt int
	jt      JobType     // the job's type, once known
	policy  RetryPolicy // jt.Retry with its defaults
	m       *typeMetrics
	outcome outcome // how the attempt ended, once it has
}

// process runs one delivery of a job request and settles its message.
// With tracing on, the delivery is a span (the attempt's), under the
// trace context the request carries.
func (r *Runner) process(ctx context.Context, msg jetstream.Msg) {
	var req jobs.Request
	if err := json.Unmarshal(msg.Data(), &req); err != nil {
		r.log.Error("undecodable job request, terminating it", "subject", msg.Subject(), "err", err)
		r.metrics.poisonUndecodable.Inc()
		_ = msg.TermWithReason("undecodable job request")
		return
	}
	if err := jobs.ValidateID(req.ID); err != nil {
		r.log.Error("job request without a valid id, terminating it", "subject", msg.Subject(), "err", err)
		r.metrics.poisonInvalidID.Inc()
		_ = msg.TermWithReason("invalid job id")
		return
	}
	if r.tracer == nil {
		r.deliver(ctx, msg, req, trace.SpanContext{})
		return
	}
	ctx, span := r.startAttempt(ctx, msg, req)
	endAttempt(span, r.deliver(ctx, msg, req, span.SpanContext()))
}

// deliver runs a decoded delivery and returns its execution (nil when the
// job's state could not be read). Its log lines name sc, the attempt's
// span, when it is valid.
func (r *Runner) deliver(ctx context.Context, msg jetstream.Msg, req jobs.Request, sc trace.SpanContext) *execution {
	storeCtx := context.WithoutCancel(ctx)
	meta, err := msg.Metadata()
	if err != nil {
		meta = nil // not a JetStream message: read the job's state
	}
	w, err := r.openWriter(storeCtx, req, meta)
	if err != nil {
		// The attempt is not known before the job's state is read.
		delivery := uint64(0)
		if meta != nil {
			delivery = meta.NumDelivered
		}
		r.log.Warn("cannot read job state, handing it back", tracing.AppendLogArgs([]any{"job_id", req.ID, "type", req.Type, "delivery", delivery, "err", err}, sc)...)
		_ = msg.NakWithDelay(time.Second)
		return nil
	}
	x := &execution{r: r, msg: msg, w: w, attempt: nextAttempt(w.ev), m: r.metrics.forType(req.Type)}
	x.log = r.log.With(tracing.AppendLogArgs(append(make([]any, 0, 10), "job_id", req.ID, "type", req.Type, "attempt", x.attempt), sc)...)
	x.settle(ctx, storeCtx, req)
	return x
}

// settle runs the execution's job, unless there is nothing to run, and
// settles its message.
func (x *execution) settle(ctx, storeCtx context.Context, req jobs.Request) {
	r, w := x.r, x.w
	if w.ev.Status.Terminal() {
		// Finished by an earlier delivery that died before its ack, or
		// canceled while it waited: nothing to run. Its end may not be
		// recorded yet (the delivery died before that).
		x.recordEnd(storeCtx)
		_ = x.msg.DoubleAck(storeCtx)
		return
	}
	if req.ExpiresAt != nil && w.ev.StartedAt == nil && time.Now().After(*req.ExpiresAt) {
		// Not started by its deadline: it ends instead of running late
		// (the gateways' deadline timer may not have come yet).
		x.log.Info("job expired before it started", "expires_at", req.ExpiresAt)
		x.end(storeCtx, jobs.KindCanceled, jobs.StatusCanceled, nil, jobs.CanceledError(jobs.CancelRequest{By: jobs.CanceledByDeadline}))
		return
	}

	jt, known := r.reg[req.Type]
	if !known {
		x.log.Error("unknown job type, failing the job")
		r.metrics.poisonUnknownType.Inc()
		x.fail(storeCtx, &jobs.Error{Code: "unknown_type", Message: fmt.Sprintf("no runner handles job type %q", req.Type)})
		return
	}
	x.jt, x.policy = jt, jt.Retry.withDefaults()
	if x.attempt > x.policy.MaxAttempts && !isHandBack(w.ev) {
		// Earlier deliveries ended without a result (a runner crashed or
		// lost its connection mid-job): give up instead of looping.
		x.log.Error("job exceeded its attempts without a result, failing it")
		r.metrics.poisonMaxAttempts.Inc()
		x.fail(storeCtx, &jobs.Error{Code: "max_attempts", Message: fmt.Sprintf("gave up after %d attempts that ended without a result (runner crash?)", x.policy.MaxAttempts)})
		return
	}
	x.run(ctx, storeCtx, req)
}

// run runs the job's handler under ctx (cancelled when the runner gives up
// waiting for running jobs on shutdown), storing its events under
// storeCtx, and settles the attempt by how it ended.
func (x *execution) run(ctx, storeCtx context.Context, req jobs.Request) {
	r := x.r
	defer func() { x.m.attemptEnded(x.outcome) }()
	runCtx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)
	if !r.holding(req.ID, cancelRun) {
		x.log.Warn("job is already running on this runner, handing the duplicate back")
		x.outcome = outcomeDuplicate
		_ = x.msg.NakWithDelay(r.cfg.AckWait)
		return
	}
	defer r.release(req.ID)
	stopBeat := heartbeat(x.msg, r.cfg.AckWait/3, r.metrics)
	defer stopBeat()

	now := time.Now()
	if err := x.w.emit(storeCtx, jobs.KindStarted, func(e *jobs.Event) {
		e.Status, e.Attempt, e.StartedAt = jobs.StatusRunning, x.attempt, &now
		e.EndedAt, e.NextAttemptAt, e.Error, e.Result = nil, nil, nil, nil
	}); err != nil {
		x.settleStoreError(storeCtx, err)
		return
	}
	x.log.Info("job started")
	if x.attempt == 1 {
		x.m.jobsStarted.Inc()
		if !req.CreatedAt.IsZero() {
			x.m.queueWait.Observe(max(now.Sub(req.CreatedAt).Seconds(), 0))
		}
	}
	x.m.running.Inc()
	defer x.m.running.Dec()

	if x.jt.Timeout > 0 {
		var cancelT context.CancelFunc
		runCtx, cancelT = context.WithTimeoutCause(runCtx, x.jt.Timeout, errTimeout)
		defer cancelT()
	}
	job := &Job{ID: req.ID, Type: req.Type, Input: req.Input, Attempt: x.attempt, Progress: newProgress(r.cfg.MaxLogLines)}
	pubDone := make(chan error, 1)
	stopPub := make(chan struct{})
	go func() {
		pubDone <- x.w.publishProgress(storeCtx, job.Progress, r.cfg.ProgressInterval, stopPub, cancelRun)
	}()

	ranFrom := time.Now()
	result, herr := runHandler(runCtx, x.log, x.jt.Handler, job, x.m.panics)
	x.m.runDuration.Observe(time.Since(ranFrom).Seconds())
	close(stopPub)
	perr := <-pubDone

	var canceled *cancelRequested
	switch cause := context.Cause(runCtx); {
	case perr != nil:
		x.settleStoreError(storeCtx, perr)
	case herr == nil: // also while shutting down: a finished job is kept
		x.reportResult(storeCtx, result)
	case errors.Is(context.Cause(ctx), errShutdown):
		x.handBack(storeCtx)
	case errors.As(cause, &canceled):
		x.log.Info("job canceled", "by", canceled.req.By)
		x.m.cancels.Inc()
		x.end(storeCtx, jobs.KindCanceled, jobs.StatusCanceled, nil, jobs.CanceledError(canceled.req))
	case errors.Is(cause, errTimeout):
		x.m.timeouts.Inc()
		jerr := &jobs.Error{Code: "timeout", Message: fmt.Sprintf("the attempt ran longer than %v", x.jt.Timeout)}
		if x.policy.RetryTimeouts {
			x.reportError(storeCtx, jerr)
		} else {
			x.fail(storeCtx, jerr)
		}
	default:
		var perm *PermanentError
		if errors.As(herr, &perm) {
			x.log.Info("job failed permanently", "err", herr)
			x.fail(storeCtx, perm.Err)
			return
		}
		x.reportError(storeCtx, toJobError(herr))
	}
}

// nextAttempt numbers the attempt about to start from the job's stored
// state: one more than the last attempt that started.
func nextAttempt(last jobs.Event) int {
	return last.Attempt + 1
}

// isHandBack tells a hand-back (a "retrying" event without an error) from
// a retry after a failure.
func isHandBack(ev jobs.Event) bool {
	return ev.Kind == jobs.KindRetrying && ev.Error == nil
}

// handBack gives a running job back for another runner when this one shuts
// down: it records that (so the attempt is run again, not used up) and
// hands the message back for immediate redelivery.
func (x *execution) handBack(ctx context.Context) {
	x.log.Info("runner shutting down, handing the job back")
	now := time.Now()
	if err := x.w.emit(ctx, jobs.KindRetrying, func(e *jobs.Event) {
		e.Status, e.Error, e.NextAttemptAt = jobs.StatusQueued, nil, &now
		e.Message = "handed back: its runner shut down"
	}); err != nil && !errors.Is(err, errJobEnded) && !errors.Is(err, errSuperseded) {
		x.log.Warn("cannot record the hand-back", "err", err)
	}
	x.outcome = outcomeHandedBack
	_ = x.msg.Nak()
}

// reportError ends a failed attempt: another attempt is scheduled if the
// policy allows one; otherwise the job fails with jerr.
func (x *execution) reportError(ctx context.Context, jerr *jobs.Error) {
	if x.attempt >= x.policy.MaxAttempts {
		x.log.Info("job failed on its last attempt", "err", jerr)
		x.fail(ctx, jerr)
		return
	}
	delay := x.policy.Delay(x.attempt)
	next := time.Now().Add(delay)
	x.log.Info("job attempt failed, retrying", "err", jerr, "in", delay)
	if err := x.w.emit(ctx, jobs.KindRetrying, func(e *jobs.Event) {
		e.Status, e.Error, e.NextAttemptAt = jobs.StatusQueued, jerr, &next
	}); err != nil {
		x.settleStoreError(ctx, err)
		return
	}
	x.outcome = outcomeRetried
	_ = x.msg.NakWithDelay(delay)
}

// reportResult ends a successful attempt with the handler's result.
func (x *execution) reportResult(ctx context.Context, result any) {
	var raw json.RawMessage
	if result != nil {
		b, err := json.Marshal(result)
		if err != nil {
			x.fail(ctx, &jobs.Error{Code: "bad_result", Message: "the result does not encode to JSON: " + err.Error()})
			return
		}
		raw = b
	}
	x.end(ctx, jobs.KindSucceeded, jobs.StatusSucceeded, raw, nil)
}

func (x *execution) fail(ctx context.Context, jerr *jobs.Error) {
	x.end(ctx, jobs.KindFailed, jobs.StatusFailed, nil, jerr)
}

// end stores the job's final event, and only then acks the job message;
// the record of the job's end (so nothing stored after it counts) is sent
// with the ack, not before it: the final event is what a redelivery reads,
// and it records the end again if this runner dies before that record is
// stored.
func (x *execution) end(ctx context.Context, kind jobs.Kind, status jobs.Status, result json.RawMessage, jerr *jobs.Error) {
	now := time.Now()
	err := x.w.emit(ctx, kind, func(e *jobs.Event) {
		e.Status, e.Attempt, e.EndedAt, e.NextAttemptAt, e.Result, e.Error = status, max(e.Attempt, x.attempt), &now, nil, result, jerr
		if status == jobs.StatusSucceeded {
			e.Percent = jobs.Percentage(100)
			if e.Total > 0 {
				e.Current = e.Total
			}
		}
	})
	if err != nil {
		x.settleStoreError(ctx, err)
		return
	}
	x.outcome = x.m.finished(status)
	recorded := x.sendEndRecord(ctx)
	// No need to wait for the ack's confirmation: the final state is
	// stored, so a redelivery after a lost ack only acks.
	if err := x.msg.Ack(); err != nil {
		x.log.Warn("ack failed after the final state was stored", "err", err)
	}
	recorded()
}

// sendEndRecord starts storing the record of the job's end, so that it
// travels with the ack instead of before it; the function it returns
// waits until it is stored.
func (x *execution) sendEndRecord(ctx context.Context) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		x.recordEnd(ctx)
	}()
	return func() { <-done }
}

// recordEnd records that the job ended with the writer's last (final)
// event. A record that exists already is fine: the first one wins.
func (x *execution) recordEnd(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	if err := jobs.RecordEnd(rctx, x.r.js, x.w.ev, x.w.lastSeq); err != nil && !errors.Is(err, jobs.ErrRecorded) {
		x.log.Warn("cannot record the job's end", "err", err)
	}
}

// settleStoreError settles a delivery whose events could not be stored.
func (x *execution) settleStoreError(ctx context.Context, err error) {
	switch {
	case errors.Is(err, errJobEnded):
		x.log.Info("job ended elsewhere (canceled?), stopping this attempt")
		x.outcome = outcomeEndedElsewhere
		_ = x.msg.DoubleAck(ctx)
	case errors.Is(err, errSuperseded):
		x.log.Warn("a newer attempt owns the job, stopping this one", "err", err)
		x.outcome = outcomeSuperseded
	default:
		x.log.Warn("cannot store job events, handing the job back", "err", err)
		x.outcome = outcomeStoreFailed
		_ = x.msg.NakWithDelay(time.Second)
	}
}

// runHandler runs h, turning a panic into an error (the stack goes to the
// log, not into the job's events) counted in panics.
func runHandler(ctx context.Context, log *slog.Logger, h Handler, job *Job, panics prometheus.Counter) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			panics.Inc()
			log.Error("handler panicked", "panic", p, "stack", string(debug.Stack()))
			err = &jobs.Error{Code: "panic", Message: fmt.Sprintf("handler panicked: %v", p)}
		}
	}()
	return h(ctx, job)
}

// toJobError maps a handler's error to the error stored in the event.
func toJobError(err error) *jobs.Error {
	var je *jobs.Error
	if errors.As(err, &je) {
		return je
	}
	return &jobs.Error{Code: "handler_error", Message: err.Error()}
}

// heartbeat tells JetStream the job is alive every interval until stopped,
// so a long job is not redelivered while its runner lives; m counts them.
func heartbeat(msg jetstream.Msg, every time.Duration, m *runnerMetrics) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if msg.InProgress() != nil {
					m.heartbeatFailures.Inc()
				} else {
					m.heartbeats.Inc()
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}
