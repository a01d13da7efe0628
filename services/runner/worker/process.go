package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go/jetstream"
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

// process runs one delivery of a job request and settles its message.
func (r *Runner) process(ctx context.Context, msg jetstream.Msg) {
	var req jobs.Request
	if err := json.Unmarshal(msg.Data(), &req); err != nil {
		r.log.Error("undecodable job request, terminating it", "subject", msg.Subject(), "err", err)
		_ = msg.TermWithReason("undecodable job request")
		return
	}
	if err := jobs.ValidateID(req.ID); err != nil {
		r.log.Error("job request without a valid id, terminating it", "subject", msg.Subject(), "err", err)
		_ = msg.TermWithReason("invalid job id")
		return
	}
	storeCtx := context.WithoutCancel(ctx)
	meta, err := msg.Metadata()
	w, err := r.openWriter(storeCtx, req, err == nil && meta.NumDelivered == 1)
	if err != nil {
		r.log.Warn("cannot read job state, handing it back", "job_id", req.ID, "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	attempt := nextAttempt(w.ev)
	log := r.log.With("job_id", req.ID, "type", req.Type, "attempt", attempt)
	if w.ev.Status.Terminal() {
		// Finished by an earlier delivery that died before its ack, or
		// canceled while it waited: nothing to run. Its end may not be
		// recorded yet (the delivery died before that).
		r.recordEnd(storeCtx, log, w)
		_ = msg.DoubleAck(storeCtx)
		return
	}

	jt, known := r.reg[req.Type]
	if !known {
		log.Error("unknown job type, failing the job")
		r.fail(storeCtx, log, msg, w, attempt, &jobs.Error{Code: "unknown_type", Message: fmt.Sprintf("no runner handles job type %q", req.Type)})
		return
	}
	policy := jt.Retry.withDefaults()
	if attempt > policy.MaxAttempts && !isHandBack(w.ev) {
		// Earlier deliveries ended without a result (a runner crashed or
		// lost its connection mid-job): give up instead of looping.
		log.Error("job exceeded its attempts without a result, failing it")
		r.fail(storeCtx, log, msg, w, attempt, &jobs.Error{Code: "max_attempts", Message: fmt.Sprintf("gave up after %d attempts that ended without a result (runner crash?)", policy.MaxAttempts)})
		return
	}

	runCtx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)
	if !r.holding(req.ID, cancelRun) {
		log.Warn("job is already running on this runner, handing the duplicate back")
		_ = msg.NakWithDelay(r.cfg.AckWait)
		return
	}
	defer r.release(req.ID)
	stopBeat := heartbeat(msg, r.cfg.AckWait/3)
	defer stopBeat()

	now := time.Now()
	if err := w.emit(storeCtx, jobs.KindStarted, func(e *jobs.Event) {
		e.Status, e.Attempt, e.StartedAt = jobs.StatusRunning, attempt, &now
		e.EndedAt, e.NextAttemptAt, e.Error, e.Result = nil, nil, nil, nil
	}); err != nil {
		r.settleStoreError(storeCtx, log, msg, err)
		return
	}
	log.Info("job started")

	if jt.Timeout > 0 {
		var cancelT context.CancelFunc
		runCtx, cancelT = context.WithTimeoutCause(runCtx, jt.Timeout, errTimeout)
		defer cancelT()
	}
	job := &Job{ID: req.ID, Type: req.Type, Input: req.Input, Attempt: attempt, Progress: newProgress(r.cfg.MaxLogLines)}
	pubDone := make(chan error, 1)
	stopPub := make(chan struct{})
	go func() {
		pubDone <- w.publishProgress(storeCtx, job.Progress, r.cfg.ProgressInterval, stopPub, cancelRun)
	}()

	result, herr := runHandler(runCtx, log, jt.Handler, job)
	close(stopPub)
	perr := <-pubDone

	var canceled *cancelRequested
	switch cause := context.Cause(runCtx); {
	case perr != nil:
		r.settleStoreError(storeCtx, log, msg, perr)
	case herr == nil: // also while shutting down: a finished job is kept
		r.succeed(storeCtx, log, msg, w, attempt, result)
	case errors.Is(context.Cause(ctx), errShutdown):
		r.handBack(storeCtx, log, msg, w)
	case errors.As(cause, &canceled):
		log.Info("job canceled", "by", canceled.req.By)
		r.end(storeCtx, log, msg, w, jobs.KindCanceled, jobs.StatusCanceled, attempt, nil, jobs.CanceledError(canceled.req))
	case errors.Is(cause, errTimeout):
		jerr := &jobs.Error{Code: "timeout", Message: fmt.Sprintf("the attempt ran longer than %v", jt.Timeout)}
		if policy.RetryTimeouts {
			r.retryOrFail(storeCtx, log, msg, w, policy, attempt, jerr)
		} else {
			r.fail(storeCtx, log, msg, w, attempt, jerr)
		}
	default:
		var perm *PermanentError
		if errors.As(herr, &perm) {
			log.Info("job failed permanently", "err", herr)
			r.fail(storeCtx, log, msg, w, attempt, perm.Err)
			return
		}
		r.retryOrFail(storeCtx, log, msg, w, policy, attempt, toJobError(herr))
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
func (r *Runner) handBack(ctx context.Context, log *slog.Logger, msg jetstream.Msg, w *writer) {
	log.Info("runner shutting down, handing the job back")
	now := time.Now()
	if err := w.emit(ctx, jobs.KindRetrying, func(e *jobs.Event) {
		e.Status, e.Error, e.NextAttemptAt = jobs.StatusQueued, nil, &now
		e.Message = "handed back: its runner shut down"
	}); err != nil && !errors.Is(err, errJobEnded) && !errors.Is(err, errSuperseded) {
		log.Warn("cannot record the hand-back", "err", err)
	}
	_ = msg.Nak()
}

// retryOrFail schedules another attempt if the policy allows one, and
// otherwise fails the job with the last error.
func (r *Runner) retryOrFail(ctx context.Context, log *slog.Logger, msg jetstream.Msg, w *writer, p RetryPolicy, attempt int, jerr *jobs.Error) {
	if attempt >= p.MaxAttempts {
		log.Info("job failed on its last attempt", "err", jerr)
		r.fail(ctx, log, msg, w, attempt, jerr)
		return
	}
	delay := p.Delay(attempt)
	next := time.Now().Add(delay)
	log.Info("job attempt failed, retrying", "err", jerr, "in", delay)
	if err := w.emit(ctx, jobs.KindRetrying, func(e *jobs.Event) {
		e.Status, e.Error, e.NextAttemptAt = jobs.StatusQueued, jerr, &next
	}); err != nil {
		r.settleStoreError(ctx, log, msg, err)
		return
	}
	_ = msg.NakWithDelay(delay)
}

func (r *Runner) succeed(ctx context.Context, log *slog.Logger, msg jetstream.Msg, w *writer, attempt int, result any) {
	var raw json.RawMessage
	if result != nil {
		b, err := json.Marshal(result)
		if err != nil {
			r.fail(ctx, log, msg, w, attempt, &jobs.Error{Code: "bad_result", Message: "the result does not encode to JSON: " + err.Error()})
			return
		}
		raw = b
	}
	r.end(ctx, log, msg, w, jobs.KindSucceeded, jobs.StatusSucceeded, attempt, raw, nil)
}

func (r *Runner) fail(ctx context.Context, log *slog.Logger, msg jetstream.Msg, w *writer, attempt int, jerr *jobs.Error) {
	r.end(ctx, log, msg, w, jobs.KindFailed, jobs.StatusFailed, attempt, nil, jerr)
}

// end stores the job's final event and records the job's end (so nothing
// stored after it counts), and only then acks the job message.
func (r *Runner) end(ctx context.Context, log *slog.Logger, msg jetstream.Msg, w *writer, kind jobs.Kind, status jobs.Status, attempt int, result json.RawMessage, jerr *jobs.Error) {
	now := time.Now()
	err := w.emit(ctx, kind, func(e *jobs.Event) {
		e.Status, e.Attempt, e.EndedAt, e.NextAttemptAt, e.Result, e.Error = status, max(e.Attempt, attempt), &now, nil, result, jerr
		if status == jobs.StatusSucceeded {
			e.Percent = jobs.Percentage(100)
			if e.Total > 0 {
				e.Current = e.Total
			}
		}
	})
	if err != nil {
		r.settleStoreError(ctx, log, msg, err)
		return
	}
	r.recordEnd(ctx, log, w)
	// No need to wait for the ack's confirmation: the final state is
	// stored, so a redelivery after a lost ack only acks.
	if err := msg.Ack(); err != nil {
		log.Warn("ack failed after the final state was stored", "err", err)
	}
}

// recordEnd records that the job ended with w's last (final) event. A
// record that exists already is fine: the first one wins.
func (r *Runner) recordEnd(ctx context.Context, log *slog.Logger, w *writer) {
	rctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	if err := jobs.RecordEnd(rctx, r.js, w.ev, w.lastSeq); err != nil && !errors.Is(err, jobs.ErrRecorded) {
		log.Warn("cannot record the job's end", "err", err)
	}
}

// settleStoreError settles a delivery whose events could not be stored.
func (r *Runner) settleStoreError(ctx context.Context, log *slog.Logger, msg jetstream.Msg, err error) {
	switch {
	case errors.Is(err, errJobEnded):
		log.Info("job ended elsewhere (canceled?), stopping this attempt")
		_ = msg.DoubleAck(ctx)
	case errors.Is(err, errSuperseded):
		log.Warn("a newer attempt owns the job, stopping this one", "err", err)
	default:
		log.Warn("cannot store job events, handing the job back", "err", err)
		_ = msg.NakWithDelay(time.Second)
	}
}

// runHandler runs h, turning a panic into an error (the stack goes to the
// log, not into the job's events).
func runHandler(ctx context.Context, log *slog.Logger, h Handler, job *Job) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
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
// so a long job is not redelivered while its runner lives.
func heartbeat(msg jetstream.Msg, every time.Duration) (stop func()) {
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
				_ = msg.InProgress()
			}
		}
	}()
	return func() { close(done); <-finished }
}
