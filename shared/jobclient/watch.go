package jobclient

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go/jetstream"
)

// consumerDeleteTimeout bounds the clean-up request that removes a
// finished watch's consumer from the server.
const consumerDeleteTimeout = 2 * time.Second

// Watch returns an iterator over the events of job id with a seq greater
// than afterSeq: first those already stored, then new ones as they are
// stored, in seq order and without duplicates. It ends after the job's
// terminal event (succeeded, failed or canceled), or after yielding a
// non-nil error: a watch never ends silently before the job does.
//
//	for ev, err := range client.Watch(ctx, id, lastSeen) {
//		if err != nil {
//			return err // lastSeen still tells where to resume
//		}
//		lastSeen = ev.Seq
//		...
//	}
//
// Use afterSeq 0 for the whole history, or the seq of the last event you
// processed to resume after it. If the job ended at or before afterSeq
// the iterator yields nothing and ends.
//
// Each yielded event's seq is exactly one more than the previous one's.
// The first event is afterSeq+1, except when that part of the history is
// no longer stored (JOBS_EVENTS keeps a bounded number of events per job
// for a bounded time): then the first event is the oldest one still
// stored, and its seq is greater than afterSeq+1. Every event is a full
// snapshot of the job, so that event still tells the job's whole state;
// compare its seq with afterSeq to notice the truncation. Should events
// be removed in the middle of a watch (a reader that lags behind the
// whole retention), the watch yields an error wrapping ErrGap instead of
// skipping them. The stream's limits remove a job's oldest events first,
// so watching again from the last seq seen then continues from the oldest
// stored event.
//
// The errors are: one wrapping jobs.ErrInvalidID for a malformed id (no
// subject is built from it), jobs.ErrNotFound for a job with no stored
// events, ErrGap, ctx.Err() when ctx ends, and NATS errors such as a
// closed connection. NATS reconnects are not errors: the watch goes on
// from where it was.
//
// Watch reads the job's stream through an ordered consumer filtered to the
// subject its events are stored on (jobs.EventSubject), which NATS
// recreates after a reconnect or a server restart from the last message
// delivered. The consumer is stopped
// and removed when the loop ends, whether by the job's end, an error, a
// break, or ctx. (Should ctx end while NATS is unreachable and the
// consumer is being recreated, the loop ends when the current attempt to
// recreate it gives up: up to about 20 seconds later.)
//
// Each range over the returned iterator is a new watch from afterSeq.
func (c *Client) Watch(ctx context.Context, id string, afterSeq uint64) iter.Seq2[jobs.Event, error] {
	return func(yield func(jobs.Event, error) bool) {
		if err := jobs.ValidateID(id); err != nil {
			yield(jobs.Event{}, err)
			return
		}
		if err := c.watch(ctx, id, afterSeq, yield); err != nil {
			yield(jobs.Event{}, err)
		}
	}
}

// watch yields job id's events after afterSeq until its terminal event or
// until yield returns false; then it returns nil. Otherwise it returns the
// error that ended the watch, which the caller yields.
func (c *Client) watch(ctx context.Context, id string, afterSeq uint64, yield func(jobs.Event, error) bool) error {
	events, err := c.eventsStream(ctx)
	if err != nil {
		return err
	}
	last, lastStreamSeq, err := jobs.LastEvent(ctx, events, id)
	if err != nil {
		return fmt.Errorf("watch job %s: %w", id, err)
	}
	if last.Seq <= afterSeq && last.Status.Terminal() {
		return nil // the caller has seen the job's end already
	}

	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{jobs.EventSubject(id)},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	}
	if afterSeq+1 >= last.Seq {
		// Nothing older than the last event is wanted: start there.
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, lastStreamSeq
	}
	cons, err := events.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("watch job %s: %w", id, err)
	}
	defer c.removeConsumer(ctx, events, cons)
	msgs, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("watch job %s: %w", id, err)
	}
	defer msgs.Stop()
	// Next returns when ctx ends, except while the ordered consumer
	// recreates itself; stopping it ends that too.
	defer context.AfterFunc(ctx, msgs.Stop)()

	prev := afterSeq // seq of the last event yielded (or afterSeq)
	first := true    // no event delivered yet
	for {
		msg, err := msgs.Next(jetstream.NextContext(ctx))
		if ctx.Err() != nil {
			return fmt.Errorf("watch job %s: %w", id, ctx.Err())
		}
		if err != nil {
			return fmt.Errorf("watch job %s: %w", id, err)
		}
		var ev jobs.Event
		if err := json.Unmarshal(msg.Data(), &ev); err != nil || ev.JobID != id || ev.Seq == 0 {
			md, _ := msg.Metadata()
			var streamSeq uint64
			if md != nil {
				streamSeq = md.Sequence.Stream
			}
			return fmt.Errorf("watch job %s: the event at stream sequence %d is not a valid event of this job (err: %v)", id, streamSeq, err)
		}
		wasFirst := first
		first = false
		if ev.Seq <= prev {
			continue // before afterSeq, or a duplicate
		}
		if ev.Seq != prev+1 && !wasFirst {
			return fmt.Errorf("watch job %s: %w: after seq %d comes %d", id, ErrGap, prev, ev.Seq)
		}
		prev = ev.Seq
		if !yield(ev, nil) {
			return nil
		}
		if ev.Status.Terminal() {
			return nil
		}
	}
}

// removeConsumer deletes the ordered consumer of a finished watch from
// the server, so a client that watches many jobs leaves none behind. It is
// best effort: the server removes an idle ordered consumer by itself after
// a few minutes.
func (c *Client) removeConsumer(ctx context.Context, events jetstream.Stream, cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil || !c.nc.IsConnected() {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), consumerDeleteTimeout)
	defer cancel()
	_ = events.DeleteConsumer(dctx, info.Name)
}
