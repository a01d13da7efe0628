package main

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go/jetstream"
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
	repairs sync.WaitGroup
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
	w.repairs.Wait()
	g.hub.leave(w.box, watching)
}

// repairGaps returns the outbox's gap handler: it queues the missing
// events from the stream in the background (tracked by wg), then releases
// the live events held meanwhile. A watcher whose gap cannot be filled is
// closed; it can resume by seq.
func (g *gateway) repairGaps(ctx context.Context, box *outbox, wg *sync.WaitGroup) func(string, uint64, outMsg) {
	return func(id string, after uint64, upTo outMsg) {
		wg.Go(func() {
			if err := g.replay(ctx, box, id, after, upTo); err != nil {
				box.close(closeSlow)
				return
			}
			box.endReplay(id)
		})
	}
}

// catchUp queues what the watcher must see before the live events.
func (g *gateway) catchUp(ctx context.Context, p principal, box *outbox, id string, afterSeq *uint64) error {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	job, err := g.readJob(rctx, p, id)
	cancel()
	if err != nil {
		return err
	}
	last, ok := eventMsg(jobs.EventSubject(id), job.Data)
	if !ok {
		return errorf(http.StatusInternalServerError, "internal", "the job's stored state is damaged")
	}
	if afterSeq == nil {
		box.add(last)
		return nil
	}
	box.seen(id, *afterSeq)
	if *afterSeq >= last.seq {
		return nil // nothing new yet
	}
	return g.replay(ctx, box, id, *afterSeq, last)
}

// replay queues the stored events after afterSeq up to last, at the
// watcher's pace. If some of them have aged out it queues the current
// state instead, marked truncated.
func (g *gateway) replay(ctx context.Context, box *outbox, id string, afterSeq uint64, last outMsg) error {
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cons, err := g.streams.Events.OrderedConsumer(rctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{jobs.EventSubject(id)},
	})
	if err != nil {
		return errUnavailable(err)
	}
	first := true
	for {
		m, err := cons.Next(jetstream.FetchContext(rctx))
		if err != nil {
			return errUnavailable(err)
		}
		ev, ok := eventMsg(m.Subject(), m.Data())
		if !ok {
			continue
		}
		if first && ev.seq > afterSeq+1 {
			last.truncated = true
			last.frame = truncatedFrame(id, last.raw)
			box.add(last)
			return nil
		}
		first = false
		if ev.seq > afterSeq {
			if err := box.waitRoom(rctx, coalesceAt/2); err != nil {
				return errUnavailable(err)
			}
			box.add(ev)
		}
		if ev.seq >= last.seq {
			return nil
		}
	}
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
