package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go/jetstream"
)

// storeTimeout bounds one attempt to store an event.
const storeTimeout = 5 * time.Second

// errSuperseded means another writer (a newer attempt of the same job)
// has stored events since this one last did: this attempt must stop.
var errSuperseded = errors.New("job attempt superseded")

// process runs one delivery of a job request and settles its message.
func (r *Runner) process(ctx context.Context, msg jetstream.Msg) {
	var req jobs.Request
	if err := json.Unmarshal(msg.Data(), &req); err != nil {
		r.log.Error("undecodable job request, terminating it", "subject", msg.Subject(), "err", err)
		_ = msg.TermWithReason("undecodable job request")
		return
	}
	if err := jobs.ValidateID(req.ID); err != nil {
		r.log.Error("job request without a valid id, terminating it", "err", err)
		_ = msg.TermWithReason("invalid job id")
		return
	}
	attempt := 1
	if md, err := msg.Metadata(); err == nil {
		attempt = int(md.NumDelivered)
	}
	log := r.log.With("job_id", req.ID, "type", req.Type, "attempt", attempt)
	storeCtx := context.WithoutCancel(ctx)

	w, err := r.openWriter(storeCtx, req)
	if err != nil {
		log.Warn("cannot read job state, handing it back", "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	if w.ev.Status.Terminal() {
		// The final state was stored by an earlier delivery that died
		// before its ack: the job is done.
		_ = msg.DoubleAck(storeCtx)
		return
	}

	jt, known := r.reg[req.Type]
	if !known {
		log.Error("unknown job type, failing the job")
		r.finish(storeCtx, msg, w, attempt, nil, &jobs.Error{Code: "unknown_type", Message: fmt.Sprintf("no runner handles job type %q", req.Type)})
		return
	}

	now := time.Now()
	if err := w.emit(storeCtx, jobs.KindStarted, func(e *jobs.Event) {
		e.Status, e.Attempt, e.StartedAt = jobs.StatusRunning, attempt, &now
		e.EndedAt, e.Error, e.Result = nil, nil, nil
	}); err != nil {
		r.abandon(log, msg, err)
		return
	}

	runCtx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)
	job := &Job{ID: req.ID, Type: req.Type, Input: req.Input, Attempt: attempt, Progress: newProgress()}
	stopBeat := heartbeat(msg, r.cfg.AckWait/3)
	pubDone := make(chan error, 1)
	stopPub := make(chan struct{})
	go func() { pubDone <- w.publishProgress(storeCtx, job.Progress, stopPub, cancelRun) }()

	result, herr := runHandler(runCtx, jt.Handler, job)
	close(stopPub)
	perr := <-pubDone
	defer stopBeat()

	switch {
	case errors.Is(context.Cause(ctx), errShutdown):
		log.Info("runner shutting down, handing the job back")
		_ = msg.Nak()
		return
	case perr != nil:
		r.abandon(log, msg, perr)
		return
	}
	if herr != nil {
		log.Info("job failed", "err", herr)
		r.finish(storeCtx, msg, w, attempt, nil, toJobError(herr))
		return
	}
	r.finish(storeCtx, msg, w, attempt, result, nil)
}

// abandon gives up on a delivery whose events can no longer be stored.
func (r *Runner) abandon(log interface{ Warn(string, ...any) }, msg jetstream.Msg, err error) {
	if errors.Is(err, errSuperseded) {
		log.Warn("a newer attempt owns the job, stopping this one", "err", err)
		return
	}
	log.Warn("cannot store job events, handing the job back", "err", err)
	_ = msg.NakWithDelay(time.Second)
}

// finish stores the final event, and only then acks the job message.
func (r *Runner) finish(ctx context.Context, msg jetstream.Msg, w *writer, attempt int, result any, jerr *jobs.Error) {
	var raw json.RawMessage
	if jerr == nil && result != nil {
		b, err := json.Marshal(result)
		if err != nil {
			jerr = &jobs.Error{Code: "bad_result", Message: "result does not encode to JSON: " + err.Error()}
		} else {
			raw = b
		}
	}
	kind, status := jobs.KindSucceeded, jobs.StatusSucceeded
	if jerr != nil {
		kind, status = jobs.KindFailed, jobs.StatusFailed
	}
	now := time.Now()
	err := w.emit(ctx, kind, func(e *jobs.Event) {
		e.Status, e.Attempt, e.EndedAt, e.Result, e.Error = status, max(e.Attempt, attempt), &now, raw, jerr
		if status == jobs.StatusSucceeded {
			e.Percent = jobs.Percentage(100)
			if e.Total > 0 {
				e.Current = e.Total
			}
		}
	})
	if err != nil {
		r.abandon(r.log.With("job_id", w.ev.JobID), msg, err)
		return
	}
	if err := msg.DoubleAck(ctx); err != nil {
		// The final state is stored; a redelivery will see it and ack.
		r.log.Warn("ack failed after the final state was stored", "job_id", w.ev.JobID, "err", err)
	}
}

func runHandler(ctx context.Context, h Handler, job *Job) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &PermanentError{Err: &jobs.Error{Code: "panic", Message: fmt.Sprintf("handler panicked: %v\n%s", p, debug.Stack())}}
		}
	}()
	return h(ctx, job)
}

// toJobError maps a handler's error to the error stored in the event.
func toJobError(err error) *jobs.Error {
	var perm *PermanentError
	if errors.As(err, &perm) {
		return perm.Err
	}
	var je *jobs.Error
	if errors.As(err, &je) {
		return je
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &jobs.Error{Code: "timeout", Message: err.Error()}
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
