package live

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/jobwire/jobwire/services/gateway/jobops"
	"github.com/jobwire/jobwire/shared/jobs"
)

// maxWatches is how many jobs one session may watch.
const maxWatches = 1000

// Session is one watcher (a WebSocket or an SSE stream): its life (a
// context, ended by Close or End), the jobs it watches and the outbox its
// transport drains with WriteLoop. Watch, Unwatch, WatchAll and UnwatchAll
// are called by one goroutine (the transport's reader), End after it.
type Session struct {
	node     *Node
	who      jobops.Caller
	ctx      context.Context
	c        *conn
	box      *outbox
	repairs  repairs
	watching map[string]bool
}

// NewSession opens a session for who under parent; ErrShuttingDown once
// CloseAll has been called. End must follow.
func (n *Node) NewSession(parent context.Context, who jobops.Caller) (*Session, error) {
	ctx, cancel := context.WithCancel(parent)
	s := &Session{node: n, who: who, ctx: ctx, c: &conn{cancel: cancel}, watching: map[string]bool{}}
	s.box = newOutbox(s.c.close)
	s.box.coalesced = n.metrics.coalesced
	s.box.onGap = n.repairGaps(ctx, s.box, &s.repairs)
	if !n.join(s.box) {
		cancel()
		return nil, ErrShuttingDown
	}
	return s, nil
}

// Context ends when the session is closed.
func (s *Session) Context() context.Context { return s.ctx }

// Close ends the session for reason; the first reason given wins.
func (s *Session) Close(reason error) { s.c.close(reason) }

// Reason is why the session was closed (see Close); nil if it just ended.
func (s *Session) Reason() error { return s.c.closeReason() }

// End closes the session, waits for its gap repairs and drops its watches.
func (s *Session) End() {
	s.c.cancel()
	s.repairs.end()
	s.node.leave(s.box, s.watching)
	s.node.metrics.sessionClosed(s.c.closeReason())
}

// Watch starts following job id: first its current state (afterSeq nil)
// or the stored events after *afterSeq, then its live events. It fails
// with the id's validation error, ErrTooManyWatches, or what the node's
// Jobs reader answers for a job who may not see.
func (s *Session) Watch(id string, afterSeq *uint64) error {
	if err := jobs.ValidateID(id); err != nil {
		return err
	}
	if !s.watching[id] && len(s.watching) >= maxWatches {
		return ErrTooManyWatches
	}
	if err := s.node.follow(s.ctx, s.who, s.box, id, afterSeq); err != nil {
		delete(s.watching, id)
		return err
	}
	s.watching[id] = true
	return nil
}

// Unwatch stops following job id.
func (s *Session) Unwatch(id string) {
	if jobs.ValidateID(id) == nil && s.watching[id] {
		delete(s.watching, id)
		s.node.unwatch(id, s.box)
		s.box.forget(id)
	}
}

// WatchAll follows the live events of every job (for dashboards); only
// admins may.
func (s *Session) WatchAll() error {
	if !s.who.Admin {
		return ErrForbidden
	}
	if err := s.node.watchAll(s.box); err != nil {
		return fmt.Errorf("%w: %w", ErrFeedUnavailable, err)
	}
	s.box.setFeed(true, "")
	s.watching[jobs.AllProgress] = true
	return nil
}

// UnwatchAll stops following every job.
func (s *Session) UnwatchAll() {
	if s.watching[jobs.AllProgress] {
		delete(s.watching, jobs.AllProgress)
		s.node.unwatch(jobs.AllProgress, s.box)
		s.box.setFeed(false, "")
	}
}

// WatchMine follows the live events of every job of the session's owner
// (for the owner's list of jobs): the feed of every job, of which the
// node passes on only the owner's. An admin's feed of every job
// (WatchAll) replaces it, and the other way round.
func (s *Session) WatchMine() error {
	if s.who.Owner == "" {
		return ErrForbidden
	}
	if err := s.node.watchAll(s.box); err != nil {
		return fmt.Errorf("%w: %w", ErrFeedUnavailable, err)
	}
	s.box.setFeed(true, s.who.Owner)
	s.watching[jobs.AllProgress] = true
	return nil
}

// UnwatchMine stops following the owner's jobs.
func (s *Session) UnwatchMine() { s.UnwatchAll() }

// Reply queues a reply to the client's own request (frame is sent as it
// is, before any event). It waits while MaxControl replies wait (see
// outbox.control).
func (s *Session) Reply(frame []byte) { s.box.control(s.ctx, Msg{frame: frame}) }

// WriteLoop writes what the session has waiting (write) and flushes
// (flush) until the session ends or a write fails; see writeLoop.
func (s *Session) WriteLoop(timeout time.Duration, write func(Msg) error, flush func() error) {
	writeLoop(s.ctx, s.box, timeout, s.c, s.node.metrics, write, flush)
}

// conn is the life of one session: the first close reason given wins,
// and closing cancels its context.
type conn struct {
	cancel context.CancelFunc
	mu     sync.Mutex
	reason error
}

func (c *conn) close(r error) {
	c.mu.Lock()
	if c.reason == nil {
		c.reason = r
	}
	c.mu.Unlock()
	c.cancel()
}

func (c *conn) closeReason() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

// repairs tracks a session's background gap repairs. Once the session
// ends no new one starts (a reconnect or a live gap may ask for one at
// any time), so waiting for them is safe.
type repairs struct {
	mu    sync.Mutex
	ended bool
	wg    sync.WaitGroup
}

// start runs f in the background unless the session has ended.
func (r *repairs) start(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.ended {
		r.wg.Go(f)
	}
}

// end refuses new repairs and waits for the running ones.
func (r *repairs) end() {
	r.mu.Lock()
	r.ended = true
	r.mu.Unlock()
	r.wg.Wait()
}

// writeLoop writes what box holds until ctx ends or a write fails, and
// flushes whenever it has written everything the box held: the events
// that are ready leave together. A write or flush that takes longer than
// timeout closes the session as too slow; the deadline is one reusable
// timer, not a context per message. The events written are counted in
// met (if not nil) once per flush, and each live one's delivery latency.
func writeLoop(ctx context.Context, box *outbox, timeout time.Duration, c *conn, met *nodeMetrics, write func(Msg) error, flush func() error) {
	defer c.cancel()
	deadline := time.AfterFunc(time.Hour, func() { c.close(ErrTooSlow) })
	defer deadline.Stop()
	dirty := false
	written := 0 // events since the last count
	defer func() { met.countDelivered(written) }()
	for ctx.Err() == nil { // a closed session stops, however much is queued
		m, ok := box.next()
		if !ok {
			if dirty {
				deadline.Reset(timeout)
				err := flush()
				deadline.Stop()
				if err != nil {
					if errors.Is(err, os.ErrDeadlineExceeded) {
						c.close(ErrTooSlow)
					}
					return
				}
				dirty = false
				met.countDelivered(written)
				written = 0
				continue // more may have come meanwhile
			}
			select {
			case <-ctx.Done():
				return
			case <-box.ready:
				continue
			}
		}
		deadline.Reset(timeout)
		err := write(m)
		deadline.Stop()
		if err != nil {
			return
		}
		dirty = true
		if m.seq > 0 {
			written++
			if m.live && met != nil {
				met.latency.Observe(time.Since(time.Unix(0, m.stamped)).Seconds())
			}
		}
	}
}
