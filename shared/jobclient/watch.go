package jobclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

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
// no longer stored (JOBS keeps a bounded number of events per job
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
// Watch leaves nothing behind on the server: it reads the job's history
// with batched direct gets (jobs.History) and follows new events on a
// plain subscription to jobs.<id>.progress. Whenever that skips a seq, and
// after every reconnect of the connection (events stored while the client
// was away are never delivered live), it reads the history again from
// where it was; while NATS is unreachable it keeps trying until ctx ends.
//
// A job's first final event is its end: anything stored after it is
// ignored.
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

// watch yields job id's events after afterSeq until its final event or
// until yield returns false; then it returns nil. Otherwise it returns the
// error that ended the watch, which the caller yields.
func (c *Client) watch(ctx context.Context, id string, afterSeq uint64, yield func(jobs.Event, error) bool) error {
	events, err := c.eventsStream(ctx)
	if err != nil {
		return err
	}
	if _, _, err := jobs.LastEvent(ctx, events, id); err != nil {
		return fmt.Errorf("watch job %s: %w", id, err)
	}
	// The history is read from its start even to resume near its end: a
	// final event before afterSeq must end the watch, whatever was stored
	// after it.
	f := &follower{id: id, prev: afterSeq, first: true, yield: yield}
	// Subscribe before reading the history, so nothing falls in between.
	live := make(chan *nats.Msg, liveBuffer)
	sub, err := c.nc.ChanSubscribe(jobs.ProgressSubject(id), live)
	if err != nil {
		return fmt.Errorf("watch job %s: %w", id, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	status := c.nc.StatusChanged(nats.CONNECTED, nats.CLOSED)
	defer c.nc.RemoveStatusListener(status)

	if err := f.catchUp(ctx, c.nc); err != nil || f.done {
		return err
	}
	var retry <-chan time.Time // while a catch-up is due
	pause := minCatchUpPause
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("watch job %s: %w", id, ctx.Err())
		case s := <-status:
			if s == nats.CLOSED {
				return fmt.Errorf("watch job %s: %w", id, nats.ErrConnectionClosed)
			}
			retry, pause = time.After(0), minCatchUpPause
		case m := <-live:
			if f.offerLive(m) {
				retry = time.After(0)
			}
		case <-retry:
			retry = nil
			err := f.catchUp(ctx, c.nc)
			switch {
			case ctx.Err() != nil:
				return fmt.Errorf("watch job %s: %w", id, ctx.Err())
			case errors.Is(err, jobs.ErrHistory) && !c.nc.IsClosed():
				retry, pause = time.After(pause), min(2*pause, maxCatchUpPause)
			case err != nil || f.done:
				return err
			}
		}
		if f.done {
			return nil
		}
	}
}

// Watch's catch-up settings.
const (
	// liveBuffer is how many live events may wait; beyond, NATS drops
	// them and the watch reads them from the history instead.
	liveBuffer = 1024
	// Pauses between failed catch-ups while NATS is away.
	minCatchUpPause = 50 * time.Millisecond
	maxCatchUpPause = 2 * time.Second
)

// follower is where one watch is in a job's events.
type follower struct {
	id    string
	prev  uint64 // seq of the last event yielded (or afterSeq)
	first bool   // no stored event read yet
	from  uint64 // stream sequence to read the history from next
	done  bool   // the job ended, or yield asked to stop
	yield func(jobs.Event, error) bool
}

// catchUp yields what the history holds after the last event yielded. A
// failed read returns an error wrapping jobs.ErrHistory; the watch may try
// again.
func (f *follower) catchUp(ctx context.Context, nc *nats.Conn) error {
	for m, err := range jobs.History(ctx, nc, f.id, f.from) {
		if err != nil {
			return fmt.Errorf("watch job %s: %w", f.id, err)
		}
		var ev jobs.Event
		if err := json.Unmarshal(m.Data, &ev); err != nil || ev.JobID != f.id || ev.Seq == 0 {
			return fmt.Errorf("watch job %s: the event at stream sequence %d is not a valid event of this job (err: %v)", f.id, m.StreamSeq, err)
		}
		wasFirst := f.first
		// The job's request (seq 1) stays as long as its events do, but
		// the events right after it may have aged out: a gap after it is
		// a truncated history, not a lost event.
		f.first = wasFirst && ev.Seq == 1
		f.from = m.StreamSeq + 1
		if ev.Seq > f.prev+1 && !wasFirst {
			return fmt.Errorf("watch job %s: %w: after seq %d comes %d", f.id, ErrGap, f.prev, ev.Seq)
		}
		if f.take(ev); f.done {
			return nil
		}
	}
	return nil
}

// offerLive takes a live event if it is the next one; it reports whether
// the history must be read first (a seq was skipped, or the message is not
// a valid event: the history tells).
func (f *follower) offerLive(m *nats.Msg) (catchUp bool) {
	var ev jobs.Event
	if err := json.Unmarshal(m.Data, &ev); err != nil || ev.JobID != f.id || ev.Seq == 0 {
		return true
	}
	if ev.Seq > f.prev+1 || f.first {
		return true
	}
	if ev.Seq == f.prev+1 {
		if seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64); err == nil {
			f.from = seq + 1
		}
	}
	f.take(ev)
	return false
}

// take yields ev if it comes after the last event yielded. The job's first
// final event ends the watch, also one at or before afterSeq: the caller
// has seen the job's end already.
func (f *follower) take(ev jobs.Event) {
	if ev.Seq > f.prev {
		f.prev = ev.Seq
		if !f.yield(ev, nil) {
			f.done = true
			return
		}
	}
	if ev.Status.Terminal() {
		f.done = true
	}
}
