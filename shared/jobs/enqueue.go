package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrDuplicateID means a job with this id is stored already (of any
// type): a request is stored only on a job id that has no messages.
var ErrDuplicateID = errors.New("a job with this id exists already")

// Enqueue stores a new job: its request, which is also its "queued" event
// (seq 1) and names its owner (req.Owner, fixed for good). That one write,
// acknowledged by JetStream, is the whole submit: when Enqueue returns nil
// the job is stored and will run. It returns the queued event. Input must
// already be checked by the caller.
//
// The write is fenced on the job id: it is stored only if no message of
// the id exists (any type), else the error wraps ErrDuplicateID. A write
// whose answer does not come back (a timeout) may have been stored all the
// same; Enqueue tries it once more, and the second answer tells: "wrong
// last sequence" then means the first write landed (and Nats-Msg-Id, the
// job id, deduplicates within the stream's window). So a lost answer
// neither loses a job nor stores it twice.
//
// A delayed job (req.Deferred, due at req.RunAt) is stored as its
// "scheduled" event on SchedSubject instead, after its due timer, and a job
// with a deadline (req.ExpiresAt) after its deadline timer (WriteTimers):
// the gateways' timers queue it when due, or end it "expired".
//
// When ctx carries a span (the submit's, where the caller traces), the
// request carries its W3C trace context as NATS headers (see
// TraceparentHeader), so the runner's attempts and the events they store
// join the submit's trace.
func Enqueue(ctx context.Context, js jetstream.Publisher, req Request) (Event, error) {
	m, err := RequestMsg(req)
	if err != nil {
		return Event{}, err
	}
	if err := WriteTimers(ctx, js, req); err != nil {
		return Event{}, err
	}
	if err := EnqueueMsg(ctx, js, m); err != nil {
		return Event{}, err
	}
	return req.Queued(), nil
}

// RequestMsg is req as Enqueue stores it: its JSON on its queue subject
// (PriorityQueueSubject; SchedSubject for a delayed job), its id
// as Nats-Msg-Id and the fence that refuses a second job of the same id.
// A caller that adds headers of its own (trace context) adds them to the
// message and stores it with EnqueueMsg or EnqueueMany.
func RequestMsg(req Request) (*nats.Msg, error) {
	if err := ValidateID(req.ID); err != nil {
		return nil, err
	}
	if err := ValidateType(req.Type); err != nil {
		return nil, err
	}
	data, err := req.MarshalJSON()
	if err != nil {
		return nil, err
	}
	subject := PriorityQueueSubject(req.Priority, req.Type, req.ID)
	if req.Deferred {
		subject = SchedSubject(req.Type, req.ID)
	}
	m := &nats.Msg{Subject: subject, Data: data, Header: make(nats.Header, 5)}
	m.Header[jetstream.MsgIDHeader] = []string{req.ID}
	fence(m.Header, req.ID, 0)
	return m, nil
}

// DueRequestMsg is a delayed job's request, stored when it is due (by the
// gateways' timers): req (read from the job's "scheduled" event) as the
// job's next event, "queued", on its queue subject, fenced on the job's
// last message (at stream sequence lastSeq, seq lastEventSeq), so that a
// job canceled meanwhile is never queued. EnqueueMsg stores it; its
// ErrDuplicateID then means the job moved on.
func DueRequestMsg(req Request, lastSeq, lastEventSeq uint64) (*nats.Msg, error) {
	req.Deferred, req.Seq = false, lastEventSeq+1
	data, err := req.MarshalJSON()
	if err != nil {
		return nil, err
	}
	m := &nats.Msg{Subject: PriorityQueueSubject(req.Priority, req.Type, req.ID), Data: data, Header: make(nats.Header, 5)}
	m.Header[jetstream.MsgIDHeader] = []string{req.ID + ".due"}
	fence(m.Header, req.ID, lastSeq)
	return m, nil
}

// EnqueueMsg stores a RequestMsg as Enqueue does, with the trace context
// of ctx (if it carries a span) as headers.
func EnqueueMsg(ctx context.Context, js jetstream.Publisher, m *nats.Msg) error {
	InjectTrace(ctx, m.Header)
	store := func(ctx context.Context) (*jetstream.PubAck, error) { return js.PublishMsg(ctx, m) }
	_, err := store(ctx)
	return settleRequest(ctx, m, err, store)
}

// settleRequest decides what the answer err to the first write of request
// m means, trying once more (with store) if it may or may not have been
// stored.
func settleRequest(ctx context.Context, m *nats.Msg, err error, store func(context.Context) (*jetstream.PubAck, error)) error {
	switch {
	case err == nil:
		return nil
	case unsure(err):
		_, err = again(ctx, store)
		if IsWrongLastSequence(err) {
			return nil // the first write was stored
		}
	case IsWrongLastSequence(err):
		return fmt.Errorf("%w: %s", ErrDuplicateID, m.Header.Get(jetstream.MsgIDHeader))
	}
	if err != nil {
		return fmt.Errorf("store job request: %w", err)
	}
	return nil
}

// EnqueueMany stores many RequestMsgs as Enqueue does, pipelined: up to
// maxInFlight writes wait for their answers at once, so a batch costs
// about one round trip per maxInFlight jobs, not one per job. Each message
// keeps its own fence and outcome: errs[i] is nil when msgs[i] is stored,
// and one refused or failed write never holds the others back. A nil
// message is skipped (errs[i] nil).
func EnqueueMany(ctx context.Context, js jetstream.Publisher, msgs []*nats.Msg) []error {
	errs := make([]error, len(msgs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(len(msgs), maxInFlight) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(msgs); i = int(next.Add(1)) - 1 {
				if msgs[i] != nil {
					errs[i] = EnqueueMsg(ctx, js, msgs[i])
				}
			}
		})
	}
	wg.Wait()
	return errs
}

// maxInFlight bounds the writes of one EnqueueMany that wait for their
// answers at once.
const maxInFlight = 256

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
