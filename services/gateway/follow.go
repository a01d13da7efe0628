package main

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
)

// follow starts delivering job id's events to box: first the job's current
// state (afterSeq nil), or every stored event with a seq above *afterSeq;
// then the live events, with no gap and no duplicate between the two. The
// id must be valid. It fails with 404 for an unknown job.
func (g *gateway) follow(ctx context.Context, p principal, box *outbox, id string, afterSeq *uint64) error {
	box.startReplay(id)
	if err := g.hub.watch(id, box); err != nil {
		box.forget(id)
		return errUnavailable(err)
	}
	err := g.catchUp(ctx, p, box, id, afterSeq)
	if err != nil {
		g.hub.unwatch(id, box)
		box.forget(id)
		return err
	}
	box.endReplay(id)
	return nil
}

// watcher is one WebSocket or SSE session: its life (ctx, ended by
// c.close) and the outbox its writer drains.
type watcher struct {
	ctx     context.Context
	c       *conn
	box     *outbox
	repairs repairs
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

// startWatcher opens a session under parent; false when the gateway is
// shutting down.
func (g *gateway) startWatcher(parent context.Context) (*watcher, bool) {
	ctx, cancel := context.WithCancel(parent)
	w := &watcher{ctx: ctx, c: &conn{cancel: cancel}}
	w.box = newOutbox(w.c.close)
	w.box.onGap = g.repairGaps(ctx, w.box, &w.repairs)
	if !g.hub.join(w.box) {
		cancel()
		return nil, false
	}
	return w, true
}

// end closes the session and drops its watches.
func (g *gateway) endWatcher(w *watcher, watching map[string]bool) {
	w.c.cancel()
	w.repairs.end()
	g.hub.leave(w.box, watching)
}

// repairGaps returns the outbox's gap handler: it queues the missing
// events from the stream in the background (tracked by r), then releases
// the live events held meanwhile. While NATS is away it tries again, for
// up to repairPatience; a watcher whose gap still cannot be filled is
// closed; it can resume by seq. At most cap(g.repairSlots) repairs read
// the stream at once, so a reconnect that catches up every watcher does
// not flood NATS.
func (g *gateway) repairGaps(ctx context.Context, box *outbox, r *repairs) func(string, uint64, uint64) {
	return func(id string, after, fromStream uint64) {
		r.start(func() {
			if err := g.replayPatiently(ctx, box, id, after, fromStream); err != nil {
				box.close(closeSlow)
				return
			}
			box.endReplay(id)
		})
	}
}

// repairPatience is how long a gap repair keeps trying while NATS is
// away (a restarting server needs a few seconds to load its streams).
const repairPatience = 30 * time.Second

// replayPatiently is replay, tried again with a growing pause while it
// fails, for up to repairPatience.
func (g *gateway) replayPatiently(ctx context.Context, box *outbox, id string, after, fromStream uint64) error {
	ctx, cancel := context.WithTimeout(ctx, repairPatience)
	defer cancel()
	pause := 50 * time.Millisecond
	for {
		err := g.withRepairSlot(ctx, func() error { return g.replay(ctx, box, id, after, fromStream) })
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
		pause = min(2*pause, 2*time.Second)
	}
}

// withRepairSlot runs f once one of the gateway's repair slots is free.
func (g *gateway) withRepairSlot(ctx context.Context, f func() error) error {
	select {
	case g.repairSlots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-g.repairSlots }()
	return f()
}

// catchUp queues what the watcher must see before the live events.
func (g *gateway) catchUp(ctx context.Context, p principal, box *outbox, id string, afterSeq *uint64) error {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	job, err := g.ops.ReadJob(rctx, p.caller(), id)
	cancel()
	if err != nil {
		return err
	}
	last, ok := eventMsg(jobs.EventSubject(id), job.Data)
	if !ok {
		return errorf(http.StatusInternalServerError, "internal", "the job's stored state is damaged")
	}
	last.streamSeq = job.Seq // a catch-up after a reconnect reads on from here
	if afterSeq == nil {
		box.add(last)
		return nil
	}
	box.seen(id, *afterSeq)
	if *afterSeq >= last.seq {
		return nil // nothing new yet
	}
	return g.replay(ctx, box, id, *afterSeq, 0)
}

// replay queues the stored events of job id after seq afterSeq, reading
// the stream from sequence fromStream (0: from the start) through the
// job's first final event or the last one stored, at the watcher's pace.
// It reads with batched direct gets and leaves nothing on the server. If
// the events after afterSeq have aged out it queues the current state
// instead (the first final event, or the last stored), marked truncated.
func (g *gateway) replay(ctx context.Context, box *outbox, id string, afterSeq, fromStream uint64) error {
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	first, truncated := true, false
	var current outMsg
	for m, err := range jobs.History(rctx, g.nc, id, fromStream) {
		if err != nil {
			return errUnavailable(err)
		}
		ev, ok := eventMsg(m.Subject, m.Data)
		if !ok {
			continue
		}
		ev.streamSeq = m.StreamSeq
		if first && ev.seq > afterSeq+1 {
			truncated = true
		}
		first = false
		if truncated {
			current = ev
		} else if ev.seq > afterSeq {
			if err := box.waitRoom(rctx, coalesceAt/2); err != nil {
				return errUnavailable(err)
			}
			box.add(ev)
		}
		if ev.terminal {
			break // the job's end: nothing stored after it counts
		}
	}
	if truncated {
		current.truncated = true
		current.frame = truncatedFrame(id, current.raw)
		box.add(current)
	}
	return nil
}

// truncatedFrame is eventFrame for a snapshot sent in place of history that
// has aged out.
func truncatedFrame(id string, event []byte) []byte {
	b := make([]byte, 0, len(event)+len(id)+60)
	b = append(b, `{"op":"event","job_id":"`...)
	b = append(b, id...)
	b = append(b, `","truncated":true,"event":`...)
	b = append(b, event...)
	return append(b, '}')
}
