package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Enqueue stores a new job: first its owner record (req.Owner, fixed for
// good: see RecordOwner), then its "queued" event (seq 1), then its
// request on the queue stream, all acknowledged by JetStream, so every
// job's history starts with "queued" and a runner that picks it up at once
// continues after it. If the request cannot be stored, the job's history is
// closed with a "failed" event (code submit_failed), its end recorded, and
// the error returned: the job was not accepted. Input must already be
// checked by the caller.
//
// A write whose answer does not come back (a timeout) may have been stored
// all the same; Enqueue tries it once more, and the second answer tells:
// the owner record and the queued event are fenced (a new job's subject must be empty, so "wrong
// last sequence" means the first write landed), the request deduplicated
// by its Nats-Msg-Id (the job id). So a lost answer neither leaves a job
// that is queued for ever without a request nor fails a job that runs.
//
// When ctx carries a span (the submit's, where the caller traces), the
// queued event and the request carry its W3C trace context as NATS
// headers (see TraceparentHeader), so the runner's attempts and the
// events they store join the submit's trace.
func Enqueue(ctx context.Context, js jetstream.Publisher, req Request) (Event, error) {
	if err := ValidateID(req.ID); err != nil {
		return Event{}, err
	}
	if err := ValidateType(req.Type); err != nil {
		return Event{}, err
	}
	owner := func(ctx context.Context) (struct{}, error) {
		return struct{}{}, RecordOwner(ctx, js, req.ID, OwnerRecord{Owner: req.Owner, Type: req.Type, CreatedAt: req.CreatedAt})
	}
	_, err := owner(ctx)
	if unsure(err) {
		if _, err = again(ctx, owner); errors.Is(err, ErrRecorded) {
			err = nil // the first write was stored
		}
	}
	if err != nil {
		return Event{}, fmt.Errorf("store owner record: %w", err)
	}
	queued := req.Queued()
	storeQueued := func(ctx context.Context) (uint64, error) { return PublishEvent(ctx, js, queued, 0) }
	queuedSeq, err := storeQueued(ctx)
	if unsure(err) {
		queuedSeq, err = again(ctx, storeQueued)
		if IsWrongLastSequence(err) {
			// The first write was stored; only its stream sequence is
			// unknown, so the runner will read the state instead.
			queuedSeq, err = 0, nil
		}
	}
	if err != nil {
		return Event{}, fmt.Errorf("store queued state: %w", err)
	}
	req.QueuedSeq = queuedSeq
	data, err := req.MarshalJSON()
	if err != nil {
		return Event{}, err
	}
	storeRequest := func(ctx context.Context) (*jetstream.PubAck, error) {
		return publish(ctx, js, QueueSubject(req.Type), data, jetstream.WithMsgID(req.ID), jetstream.WithExpectStream(QueueStream))
	}
	_, err = storeRequest(ctx)
	if unsure(err) {
		_, err = again(ctx, storeRequest)
	}
	if err != nil {
		failed := queued.Next(KindFailed, time.Now())
		failed.Status, failed.EndedAt = StatusFailed, &failed.Time
		failed.Error = &Error{Code: "submit_failed", Message: "the job could not be stored; it was not accepted"}
		if queuedSeq == 0 {
			return Event{}, fmt.Errorf("store request: %w (its queued state stays: its sequence is unknown)", err)
		}
		failedSeq, ferr := again(ctx, func(ctx context.Context) (uint64, error) { return PublishEvent(ctx, js, failed, queuedSeq) })
		if ferr == nil {
			_, ferr = again(ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, RecordEnd(ctx, js, failed, failedSeq) })
		}
		if ferr != nil {
			return Event{}, fmt.Errorf("store request: %w (and closing its queued state: %v)", err, ferr)
		}
		return Event{}, fmt.Errorf("store request: %w", err)
	}
	return queued, nil
}

// unsure reports whether a publish failed without an answer (it timed out,
// or the caller stopped waiting), so it may or may not have been stored.
func unsure(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, nats.ErrTimeout)
}

// again runs a write once more after an unsure one: the caller's deadline
// may be spent, so it gets a short one of its own.
func again[T any](ctx context.Context, write func(context.Context) (T, error)) (T, error) {
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), retryTimeout)
	defer cancel()
	return write(c)
}

// retryTimeout bounds the retry of an unsure write.
const retryTimeout = 5 * time.Second
