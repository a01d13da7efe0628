package live

import (
	"context"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Msg is one message for a watcher. Events carry their job, seq and the
// stored event (raw, for SSE) and its frame (see FrameFunc), both made once
// per event and shared by every watcher. A control message (a reply to the
// client's own request) has only a frame.
type Msg struct {
	jobID     string
	owner     string // the job's owner, as its event says
	seq       uint64 // 0: a control message (an error), always sent
	streamSeq uint64 // its sequence in the events stream, 0 if unknown
	raw       []byte
	frame     []byte
	terminal  bool
	truncated bool  // the history asked for has aged out; this is the snapshot
	live      bool  // arrived live from NATS (not read from the stream)
	stamped   int64 // the event's time (Unix ns), for the delivery latency
}

// Frame is the message as the node's FrameFunc made it (or the reply
// given to Session.Reply).
func (m Msg) Frame() []byte { return m.frame }

// Event is the stored event, as JSON; nil for a reply.
func (m Msg) Event() []byte { return m.raw }

// Seq is the event's seq; 0 for a reply.
func (m Msg) Seq() uint64 { return m.seq }

// Terminal reports whether the event is its job's final one.
func (m Msg) Terminal() bool { return m.terminal }

// Truncated reports whether the event is a snapshot sent in place of
// history that has aged out.
func (m Msg) Truncated() bool { return m.truncated }

// Outbox limits.
const (
	// coalesceAt: with this many events waiting, each job's waiting events
	// are coalesced to its latest (every event is a full snapshot).
	coalesceAt = 1024
	// MaxControl bounds waiting control messages (answers to the client's
	// own requests); while that many wait, the client's next request waits
	// for room (see control).
	MaxControl = 64
)

// outbox is what one watcher (a WebSocket or an SSE stream) has waiting to
// be written. The node puts events in without ever blocking; per job it
// keeps them in seq order and drops any seq already queued, so snapshot,
// replay and live events can cross without duplicates; the job's first
// final event is its last: anything after it is dropped. While a job's
// history is being replayed, its live events are held back and released
// after the replay. A watcher that lags has its waiting progress coalesced
// to the latest event per job; final events are never dropped.
type outbox struct {
	mu      sync.Mutex
	ctrl    []Msg
	jobs    map[string]*jobQueue
	order   []string // jobs with waiting events, oldest first
	waiting int      // events waiting, all jobs
	ready   chan struct{}
	drained chan struct{} // signalled when events are taken
	ctrlOut chan struct{} // signalled when a control message is taken
	onClose func(error)
	// onGap is called (with the outbox unlocked) when a live event skips
	// seqs after the ones queued, or NATS reconnected: it must queue the
	// job's events stored after seq after (from stream sequence
	// fromStream on), then call endReplay. Until then the job's live events
	// are held.
	onGap func(id string, after, fromStream uint64)
	all   bool // on the feed of every job: live events of any job
	// feedOwner narrows the feed to the jobs of one owner ("": any).
	feedOwner string
	// coalesced counts the events coalescing dropped (nil: not counted).
	coalesced prometheus.Counter
}

type jobQueue struct {
	events     []Msg // waiting: events[head:]
	head       int
	last       uint64 // highest seq queued (or sent)
	lastStream uint64 // its stream sequence, 0 if unknown
	ended      bool   // the job's final event is queued (or sent)
	replaying  bool
	stale      bool // NATS reconnected during the replay: catch up again after it
	held       []Msg
}

func (q *jobQueue) pending() int { return len(q.events) - q.head }

func newOutbox(onClose func(error)) *outbox {
	return &outbox{
		jobs: map[string]*jobQueue{}, ready: make(chan struct{}, 1),
		drained: make(chan struct{}, 1), ctrlOut: make(chan struct{}, 1), onClose: onClose,
	}
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// close ends the watcher (the node calls it on shutdown).
func (b *outbox) close(r error) { b.onClose(r) }

// control queues a control message: an answer to the client's own
// request, which it must get. While MaxControl of them wait, control waits
// for the writer to take one, so a client that sends requests faster than
// it reads answers is slowed down (its next request is not read), never
// refused. A client that reads nothing at all is closed by the writer's
// timeout, which ends ctx; then the message is dropped with the session.
func (b *outbox) control(ctx context.Context, m Msg) {
	for {
		b.mu.Lock()
		if len(b.ctrl) < MaxControl {
			b.ctrl = append(b.ctrl, m)
			b.mu.Unlock()
			notify(b.ready)
			return
		}
		b.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-b.ctrlOut:
		}
	}
}

// live is an event that arrived from NATS.
func (b *outbox) live(m Msg) {
	b.mu.Lock()
	q := b.jobs[m.jobID]
	if q == nil && b.all && b.feedOwner != "" && m.owner != b.feedOwner {
		b.mu.Unlock() // another owner's job, on the feed of one owner's
		return
	}
	if q == nil && b.all && !m.terminal {
		q = &jobQueue{}
		b.jobs[m.jobID] = q
	}
	if q == nil { // not watched (any more)
		if b.all { // the final event of a job first seen now
			b.ctrl = append(b.ctrl, m)
			b.mu.Unlock()
			notify(b.ready)
			return
		}
		b.mu.Unlock()
		return
	}
	if q.ended {
		b.mu.Unlock()
		return
	}
	if q.replaying {
		q.held = append(q.held, m)
		b.mu.Unlock()
		return
	}
	if q.last > 0 && m.seq > q.last+1 && b.onGap != nil {
		// Missed between the stream and the subscription (or dropped by a
		// slow NATS consumer): fetch what is missing before going on.
		q.replaying = true
		q.held = append(q.held, m)
		after, from := q.last, q.lastStream+1
		b.mu.Unlock()
		b.onGap(m.jobID, after, from)
		return
	}
	b.pushLocked(q, m)
	b.mu.Unlock()
	notify(b.ready)
}

// add is an event read from the stream for this watcher (snapshot or replay).
func (b *outbox) add(m Msg) {
	b.mu.Lock()
	if q := b.jobs[m.jobID]; q != nil {
		b.pushLocked(q, m)
	}
	b.mu.Unlock()
	notify(b.ready)
}

func (b *outbox) pushLocked(q *jobQueue, m Msg) {
	if m.seq <= q.last || q.ended {
		return // already queued or sent, or after the job's end
	}
	q.last, q.lastStream, q.ended = m.seq, m.streamSeq, m.terminal
	if q.pending() == 0 {
		b.order = append(b.order, m.jobID)
	}
	q.events = append(q.events, m)
	b.waiting++
	if b.waiting >= coalesceAt {
		b.coalesceLocked()
	}
}

// coalesceLocked keeps only the latest waiting event of each job; it is a
// full snapshot, and when a job has ended it is the final event.
func (b *outbox) coalesceLocked() {
	before := b.waiting
	b.waiting = 0
	for _, id := range b.order {
		q := b.jobs[id]
		if q.pending() > 1 {
			q.events, q.head = append(q.events[:0], q.events[len(q.events)-1]), 0
		}
		b.waiting += q.pending()
	}
	if b.coalesced != nil {
		b.coalesced.Add(float64(before - b.waiting))
	}
}

// setFeed turns the feed of every job (of owner; "" for everyone's) on
// or off for this watcher.
func (b *outbox) setFeed(on bool, owner string) {
	b.mu.Lock()
	b.all, b.feedOwner = on, owner
	b.mu.Unlock()
}

// seen records that the watcher already has job id's events up to seq.
func (b *outbox) seen(id string, seq uint64) {
	b.mu.Lock()
	if q := b.jobs[id]; q != nil {
		q.last = max(q.last, seq)
	}
	b.mu.Unlock()
}

// startReplay registers job id for this watcher and holds its live events
// until endReplay. A re-watch forgets what was sent before.
func (b *outbox) startReplay(id string) {
	b.mu.Lock()
	if q := b.jobs[id]; q != nil {
		b.waiting -= q.pending()
		b.removeOrderLocked(id)
	}
	b.jobs[id] = &jobQueue{replaying: true}
	b.mu.Unlock()
}

// endReplay releases the live events held during the replay, in order. If
// they do not follow on from what is queued, the gap is repaired first.
func (b *outbox) endReplay(id string) {
	b.mu.Lock()
	q := b.jobs[id]
	if q == nil || !q.replaying {
		b.mu.Unlock()
		return
	}
	held := q.held
	q.replaying, q.held = false, nil
	for i, m := range held {
		if m.seq <= q.last || q.ended {
			continue
		}
		if m.seq > q.last+1 && b.onGap != nil {
			q.replaying, q.held = true, held[i:]
			after, from := q.last, q.lastStream+1
			b.mu.Unlock()
			b.onGap(id, after, from)
			return
		}
		b.pushLocked(q, m)
	}
	if q.stale && !q.ended && b.onGap != nil {
		q.replaying, q.stale = true, false
		after, from := q.last, q.lastStream+1
		b.mu.Unlock()
		b.onGap(id, after, from)
		return
	}
	b.mu.Unlock()
	notify(b.ready)
}

// catchUpAll is called after NATS reconnected: events stored while the
// gateway was away were never delivered live (a job's final event among
// them), so every watched job that has not ended is caught up from the
// stream, from the last seq queued for this watcher.
func (b *outbox) catchUpAll() {
	if b.onGap == nil {
		return
	}
	type gap struct {
		id          string
		after, from uint64
	}
	var gaps []gap
	b.mu.Lock()
	for id, q := range b.jobs {
		switch {
		case q.ended:
		case q.replaying: // may have read the stream before the outage
			q.stale = true
		default:
			q.replaying = true
			gaps = append(gaps, gap{id, q.last, q.lastStream + 1})
		}
	}
	b.mu.Unlock()
	for _, g := range gaps {
		b.onGap(g.id, g.after, g.from)
	}
}

// forget drops job id and whatever of it waits.
func (b *outbox) forget(id string) {
	b.mu.Lock()
	if q := b.jobs[id]; q != nil {
		b.waiting -= q.pending()
		b.removeOrderLocked(id)
		delete(b.jobs, id)
	}
	b.mu.Unlock()
}

func (b *outbox) removeOrderLocked(id string) {
	for i, o := range b.order {
		if o == id {
			b.order = append(b.order[:i], b.order[i+1:]...)
			return
		}
	}
}

// waitRoom blocks while more than n events wait, so a replay goes at the
// watcher's pace instead of being coalesced away.
func (b *outbox) waitRoom(ctx context.Context, n int) error {
	for {
		b.mu.Lock()
		w := b.waiting
		b.mu.Unlock()
		if w <= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-b.drained:
		}
	}
}

// next takes the next message to write: control messages first, then the
// jobs' events in turn. ok is false when nothing waits.
func (b *outbox) next() (m Msg, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.ctrl) > 0 {
		m = b.ctrl[0]
		b.ctrl = b.ctrl[1:]
		notify(b.ctrlOut)
		return m, true
	}
	if len(b.order) == 0 {
		return m, false
	}
	id := b.order[0]
	q := b.jobs[id]
	m = q.events[q.head]
	q.events[q.head] = Msg{}
	if q.head++; q.head == len(q.events) {
		q.events, q.head = q.events[:0], 0 // reuse the array: no allocation per event
	}
	b.waiting--
	copy(b.order, b.order[1:]) // keep the slice's capacity: no allocation per event
	b.order = b.order[:len(b.order)-1]
	if q.pending() > 0 {
		b.order = append(b.order, id) // round robin between jobs
	} else if b.all && m.terminal && !q.replaying {
		delete(b.jobs, id) // the feed forgets finished jobs
	}
	notify(b.drained)
	return m, true
}
