package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StoredEvent is one event of a job as Stream stores it (its request is
// its first, "queued", event).
type StoredEvent struct {
	Subject   string // QueueSubject or EventSubject of its job
	StreamSeq uint64 // its sequence in Stream
	Data      []byte // the event JSON
}

// History read settings.
const (
	// historyBatch is how many events one direct get request asks for.
	historyBatch = 256
	// historyBatchTimeout bounds one request and all its answers.
	historyBatchTimeout = 5 * time.Second
)

// DirectGetSubject is where direct gets of Stream are asked: a batch
// get (History) uses it, as does the NATS CLI's "nats stream get".
const DirectGetSubject = "$JS.API.DIRECT.GET." + Stream

// ErrHistory wraps a failed read of a job's history: no answer from the
// stream (NATS down, JetStream still starting), or an error status.
var ErrHistory = errors.New("cannot read the job's history")

// History yields the events of job id stored in Stream (its request first) at stream
// sequence from or later (0 and 1 both mean from the start), in stream
// order, through the last one stored while it reads. It reads with batched
// direct gets (the stream allows direct access): no consumer, nothing is
// left behind on the server. Each batch is one request answered by up to
// historyBatch messages and an end-of-batch status. After an error it
// yields nothing more. The id must have passed ValidateID.
func History(ctx context.Context, nc *nats.Conn, id string, from uint64) iter.Seq2[StoredEvent, error] {
	return func(yield func(StoredEvent, error) bool) {
		next := max(from, 1)
		for {
			more, err := historyBatchGet(ctx, nc, JobSubjects(id), next, func(ev StoredEvent) bool {
				next = ev.StreamSeq + 1
				return yield(ev, nil)
			})
			if err != nil {
				yield(StoredEvent{}, fmt.Errorf("job %s: %w: %w", id, ErrHistory, err))
				return
			}
			if !more {
				return
			}
		}
	}
}

// historyBatchGet asks for the next batch of subject's messages from
// stream sequence from and hands each to fn. more is true when the stream
// holds more of them after the batch and fn wants them.
func historyBatchGet(ctx context.Context, nc *nats.Conn, subject string, from uint64, fn func(StoredEvent) bool) (more bool, err error) {
	return DirectBatch(ctx, nc, Stream, struct {
		Seq     uint64 `json:"seq"`
		NextFor string `json:"next_by_subj"`
		Batch   int    `json:"batch"`
	}{from, subject, historyBatch}, fn)
}

// MultiLast reads the last message of each of subjects (no wildcards
// needed; up to 1,024 of them) stored in stream, in one direct get, and
// hands each found to fn in stream order. The stream must allow direct
// gets. Subjects without a message are left out.
func MultiLast(ctx context.Context, nc *nats.Conn, stream string, subjects []string, fn func(StoredEvent)) error {
	if len(subjects) == 0 {
		return nil
	}
	_, err := DirectBatch(ctx, nc, stream, struct {
		MultiLast []string `json:"multi_last"`
	}{subjects}, func(m StoredEvent) bool {
		fn(m)
		return true
	})
	return err
}

// maxDirectAnswer is the most messages one direct get answers with: up to
// 1,024 messages and the end of the batch.
const maxDirectAnswer = 1024 + 1

// DirectBatch sends a batched direct get (req, a JSApiMsgGetRequest with
// batch or multi_last) to stream and hands each message of the answer to
// fn. more is true when the stream holds more matching messages after the
// batch and fn wants them. None found is no error.
func DirectBatch(ctx context.Context, nc *nats.Conn, stream string, req any, fn func(StoredEvent) bool) (more bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, historyBatchTimeout)
	defer cancel()
	body, err := json.Marshal(req)
	if err != nil {
		return false, err
	}
	// The answer comes to an inbox of its own, into a channel that holds
	// a whole answer (a direct get sends at most 1,024 messages and its
	// end): a synchronous subscription would allocate nats.go's default
	// 64k-message channel, per request.
	inbox := nc.NewInbox()
	answers := make(chan *nats.Msg, maxDirectAnswer)
	sub, err := nc.ChanSubscribe(inbox, answers)
	if err != nil {
		return false, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest("$JS.API.DIRECT.GET."+stream, inbox, body); err != nil {
		return false, err
	}
	for {
		var m *nats.Msg
		select {
		case m = <-answers:
		case <-ctx.Done():
			return false, ctx.Err()
		}
		switch status := m.Header.Get("Status"); status {
		case "": // a message
			seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
			if err != nil {
				return false, fmt.Errorf("direct get answer without a valid %s header", jetstream.SequenceHeader)
			}
			if !fn(StoredEvent{Subject: m.Header.Get(jetstream.SubjectHeader), StreamSeq: seq, Data: m.Data}) {
				return false, nil // the rest of the batch goes with the subscription
			}
		case "204": // end of batch; Nats-Num-Pending: how many more are stored
			pending, _ := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			return pending > 0, nil
		case "404": // none (more) stored
			return false, nil
		default:
			return false, fmt.Errorf("direct get answered %s %s", status, m.Header.Get("Description"))
		}
	}
}
