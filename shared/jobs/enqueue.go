package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Enqueue stores a new job: first its "queued" event (seq 1), then its
// request on the queue stream, both acknowledged by JetStream, so every
// job's history starts with "queued" and a runner that picks it up at once
// continues after it. If the request cannot be stored, the job's history is
// closed with a "failed" event (code submit_failed) and the error returned:
// the job was not accepted. Input must already be checked by the caller.
func Enqueue(ctx context.Context, js jetstream.Publisher, req Request) (Event, error) {
	if err := ValidateID(req.ID); err != nil {
		return Event{}, err
	}
	if err := ValidateType(req.Type); err != nil {
		return Event{}, err
	}
	queued := req.Queued()
	queuedSeq, err := PublishEvent(ctx, js, queued, 0)
	if err != nil {
		return Event{}, fmt.Errorf("store queued state: %w", err)
	}
	req.QueuedSeq = queuedSeq
	data, err := req.MarshalJSON()
	if err != nil {
		return Event{}, err
	}
	if _, err := js.Publish(ctx, QueueSubject(req.Type), data,
		jetstream.WithMsgID(req.ID), jetstream.WithExpectStream(QueueStream)); err != nil {
		failed := queued.Next(KindFailed, time.Now())
		failed.Status, failed.EndedAt = StatusFailed, &failed.Time
		failed.Error = &Error{Code: "submit_failed", Message: "the job could not be stored; it was not accepted"}
		if _, ferr := PublishEvent(context.WithoutCancel(ctx), js, failed, queuedSeq); ferr != nil {
			return Event{}, fmt.Errorf("store request: %w (and closing its queued state: %v)", err, ferr)
		}
		return Event{}, fmt.Errorf("store request: %w", err)
	}
	return queued, nil
}
