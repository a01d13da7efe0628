package live

import (
	"context"
	"fmt"
	"time"

	"github.com/jobwire/jobwire/services/gateway/jobops"
	"github.com/jobwire/jobwire/shared/jobs"
)

// follow starts delivering job id's events to box: first the job's current
// state (afterSeq nil), or every stored event with a seq above *afterSeq;
// then the live events, with no gap and no duplicate between the two. The
// id must be valid. It fails with the Jobs reader's error for a job who
// may not see.
func (n *Node) follow(ctx context.Context, who jobops.Caller, box *outbox, id string, afterSeq *uint64) error {
	box.startReplay(id)
	if err := n.watch(id, box); err != nil {
		box.forget(id)
		return unavailable(err)
	}
	err := n.catchUp(ctx, who, box, id, afterSeq)
	if err != nil {
		n.unwatch(id, box)
		box.forget(id)
		return err
	}
	box.endReplay(id)
	return nil
}

// repairGaps returns the outbox's gap handler: it queues the missing
// events from the stream in the background (tracked by r), then releases
// the live events held meanwhile. While NATS is away it tries again, for
// up to repairPatience; a watcher whose gap still cannot be filled is
// closed; it can resume by seq. At most cap(n.repairSlots) repairs read
// the stream at once, so a reconnect that catches up every watcher does
// not flood NATS.
func (n *Node) repairGaps(ctx context.Context, box *outbox, r *repairs) func(string, uint64, uint64) {
	return func(id string, after, fromStream uint64) {
		r.start(func() {
			if err := n.replayPatiently(ctx, box, id, after, fromStream); err != nil {
				box.close(ErrTooSlow)
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
func (n *Node) replayPatiently(ctx context.Context, box *outbox, id string, after, fromStream uint64) error {
	ctx, cancel := context.WithTimeout(ctx, repairPatience)
	defer cancel()
	pause := 50 * time.Millisecond
	queued := 0
	for {
		err := n.withRepairSlot(ctx, func() error {
			_, _, q, err := n.replay(ctx, box, id, after, fromStream)
			queued += q
			return err
		})
		if err == nil {
			n.metrics.replayRepair.Observe(float64(queued))
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

// withRepairSlot runs f once one of the node's repair slots is free.
func (n *Node) withRepairSlot(ctx context.Context, f func() error) error {
	select {
	case n.repairSlots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-n.repairSlots }()
	return f()
}

// catchUp queues what the watcher must see before the live events.
func (n *Node) catchUp(ctx context.Context, who jobops.Caller, box *outbox, id string, afterSeq *uint64) error {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	job, err := n.jobs.ReadJob(rctx, who, id)
	cancel()
	if err != nil {
		return err
	}
	last, ok := eventMsg(jobs.ProgressSubject(id), job.Data, n.frame, false)
	if !ok {
		return ErrStateDamaged
	}
	last.streamSeq = job.Seq // a catch-up after a reconnect reads on from here
	if afterSeq == nil {
		box.add(last)
		return nil
	}
	box.seen(id, *afterSeq)
	if *afterSeq >= last.seq {
		n.metrics.replayResume.Observe(0)
		return nil // nothing new yet
	}
	queued, err := n.replayThrough(ctx, box, id, *afterSeq, last.seq)
	if err == nil {
		n.metrics.replayResume.Observe(float64(queued))
	}
	return err
}

// replayThrough is replay until it has queued the job's event seq through
// (its state, read from the stream's leader). On a replicated stream the
// direct gets of a replay may be answered by a replica that does not have
// the latest events yet; what it lacks is read again, shortly after, for
// up to replayLagPatience. It returns how many events it queued.
func (n *Node) replayThrough(ctx context.Context, box *outbox, id string, afterSeq, through uint64) (queued int, err error) {
	giveUp := time.Now().Add(replayLagPatience)
	var from uint64
	for pause := 5 * time.Millisecond; ; pause = min(2*pause, 200*time.Millisecond) {
		reached, next, q, err := n.replay(ctx, box, id, afterSeq, from)
		queued += q
		if err != nil || reached >= through {
			return queued, err
		}
		if time.Now().After(giveUp) {
			return queued, unavailable(fmt.Errorf("job %s: the stream's replica answers up to seq %d, its state is at %d", id, reached, through))
		}
		afterSeq, from = max(afterSeq, reached), max(from, next)
		select {
		case <-ctx.Done():
			return queued, unavailable(ctx.Err())
		case <-time.After(pause):
		}
	}
}

// replayLagPatience is how long a replay waits for a lagging replica to
// have the events the job's state says are stored.
const replayLagPatience = 5 * time.Second

// replay queues the stored events of job id after seq afterSeq, reading
// the stream from sequence fromStream (0: from the start) through the
// job's first final event or the last one stored, at the watcher's pace.
// It reads with batched direct gets and leaves nothing on the server. If
// events after afterSeq have aged out (the first one it lacks is missing)
// it queues the current state instead (the first final event, or the last
// stored), marked truncated. It returns the highest seq it read, the
// stream sequence to read on from, and how many events it queued.
func (n *Node) replay(ctx context.Context, box *outbox, id string, afterSeq, fromStream uint64) (reached, next uint64, queued int, err error) {
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	truncated := false
	expect := afterSeq + 1 // the next seq the watcher lacks
	var current Msg
	next = fromStream
	for m, err := range jobs.History(rctx, n.nc, id, fromStream) {
		if err != nil {
			return reached, next, queued, unavailable(err)
		}
		next = m.StreamSeq + 1
		ev, ok := eventMsg(m.Subject, m.Data, n.frame, false)
		if !ok {
			continue
		}
		reached = max(reached, ev.seq)
		ev.streamSeq = m.StreamSeq
		// A gap (the job's request stays, the events after it may have
		// aged out) ends the replay's detail: the state is what follows.
		if ev.seq > expect {
			truncated = true
		}
		if truncated {
			current = ev
		} else if ev.seq == expect {
			if err := box.waitRoom(rctx, coalesceAt/2); err != nil {
				return reached, next, queued, unavailable(err)
			}
			box.add(ev)
			queued++
			expect++
		}
		if ev.terminal {
			break // the job's end: nothing stored after it counts
		}
	}
	if truncated {
		current.truncated = true
		if n.frame != nil {
			current.frame = n.frame(id, current.raw, true)
		}
		box.add(current)
		queued++
	}
	return reached, next, queued, nil
}
