// Package live fans the events of jobs out to watchers: one Node per
// gateway bridges the jobs' NATS subjects to Sessions (a WebSocket or an
// SSE stream each), which follow jobs with no gap and no duplicate between
// the stored history and the live events (follow.go), repair gaps, and
// catch up after NATS reconnects. It knows no transport: a transport
// drains a Session with WriteLoop and writes each Msg its own way.
package live

import (
	"context"
	"encoding/json"
	"hash/maphash"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/jobwire/jobwire/services/gateway/jobops"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
)

// Node bridges jobs.<id>.progress to watchers. It holds one NATS
// subscription per job that at least one of its own watchers follows, so a
// gateway receives only the progress its watchers need. Messages are
// dispatched by a fixed set of goroutines (a job always on the same one,
// which keeps each job's events in order), encoded once per message and
// handed to every watcher's bounded queue without ever blocking. After
// every reconnect to NATS it has each watcher catch its jobs up from the
// stream: events stored while the gateway was away never arrive live.
type Node struct {
	nc     *nats.Conn
	log    *slog.Logger
	jobs   Jobs
	frame  FrameFunc
	seed   maphash.Seed
	shards []chan *nats.Msg

	mu       sync.RWMutex
	topics   map[string]*topic
	watchers map[*outbox]struct{}
	closing  bool

	reconnected chan nats.Status
	stop        chan struct{}
	dispatchers sync.WaitGroup
	sessions    sync.WaitGroup

	// repairSlots bounds the gap repairs reading the stream at once.
	repairSlots chan struct{}

	metrics *nodeMetrics
	tracer  trace.Tracer // nil: tracing is off
}

// Jobs reads a job for a watcher: the owner check and the current state
// of a watch's first snapshot (jobops.Service is one).
type Jobs interface {
	ReadJob(ctx context.Context, who jobops.Caller, id string) (jobs.Job, error)
}

// FrameFunc makes the message a transport sends for a stored event of job
// id (truncated: a snapshot sent in place of history that has aged out).
// The node makes it once per event and shares it with every watcher
// (Msg.Frame).
type FrameFunc func(id string, event []byte, truncated bool) []byte

// maxConcurrentRepairs is how many gap repairs may read the events stream
// at once (after a NATS reconnect every watched job is caught up).
const maxConcurrentRepairs = 32

type topic struct {
	sub      *nats.Subscription
	watchers map[*outbox]struct{}
}

// shardQueue is how many messages may wait per dispatcher before NATS
// reports a slow consumer.
const shardQueue = 8192

// NewNode starts the node's dispatchers; CloseAll and Wait stop them.
func NewNode(nc *nats.Conn, reader Jobs, frame FrameFunc, log *slog.Logger, opts ...Option) *Node {
	n := &Node{
		nc: nc, log: log, jobs: reader, frame: frame, seed: maphash.MakeSeed(), topics: map[string]*topic{}, watchers: map[*outbox]struct{}{},
		stop: make(chan struct{}), repairSlots: make(chan struct{}, maxConcurrentRepairs),
	}
	n.metrics = newNodeMetrics(n)
	for _, opt := range opts {
		opt(n)
	}
	n.reconnected = nc.StatusChanged(nats.CONNECTED)
	n.dispatchers.Go(n.catchUpOnReconnect)
	n.shards = make([]chan *nats.Msg, runtime.GOMAXPROCS(0))
	for i := range n.shards {
		ch := make(chan *nats.Msg, shardQueue)
		n.shards[i] = ch
		n.dispatchers.Go(func() { n.dispatch(ch) })
	}
	return n
}

func (n *Node) shard(id string) chan *nats.Msg {
	return n.shards[maphash.String(n.seed, id)%uint64(len(n.shards))]
}

// catchUpOnReconnect has every watcher catch up after each reconnect.
// (The subscriptions are sent again before the connection reports
// CONNECTED, so whatever is stored after the catch-up's reads arrives live.)
func (n *Node) catchUpOnReconnect() {
	for {
		select {
		case <-n.reconnected:
		case <-n.stop:
			return
		}
		n.mu.RLock()
		boxes := make([]*outbox, 0, len(n.watchers))
		for b := range n.watchers {
			boxes = append(boxes, b)
		}
		n.mu.RUnlock()
		for _, b := range boxes {
			b.catchUpAll()
		}
	}
}

// dispatch fans each message of its shard out to the job's watchers.
func (n *Node) dispatch(ch chan *nats.Msg) {
	for {
		var m *nats.Msg
		select {
		case m = <-ch:
		case <-n.stop:
			return
		}
		feed := m.Sub != nil && m.Sub.Subject == jobs.AllProgress // the "every job" feed
		out, ok := eventMsg(m.Subject, m.Data, n.frame, feed)
		if !ok {
			n.log.Warn("dropping a malformed event", "subject", m.Subject)
			continue
		}
		out.streamSeq, _ = strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		out.live = true
		n.metrics.received.Inc()
		key := out.jobID
		if feed {
			key = jobs.AllProgress
		}
		n.mu.RLock()
		if t := n.topics[key]; t != nil {
			for b := range t.watchers {
				b.live(out)
			}
		}
		n.mu.RUnlock()
		if out.terminal && n.tracer != nil {
			n.traceDelivery(m, key, out)
		}
	}
}

// eventMsg prepares a stored event for every watcher at once.
// The job's owner is read only for the feed of every job (withOwner),
// which watch_mine narrows to one owner's jobs: other events need no
// owner, and reading it would cost a string per event.
func eventMsg(subject string, data []byte, frame FrameFunc, withOwner bool) (Msg, bool) {
	id, ok := jobs.IDFromProgressSubject(subject) // live
	if !ok {
		id, ok = jobs.IDFromEventSubject(subject) // read from the stream
	}
	if !ok {
		return Msg{}, false
	}
	var head struct {
		eventHead
		Owner string `json:"owner"`
	}
	var err error
	if withOwner {
		err = json.Unmarshal(data, &head)
	} else {
		err = json.Unmarshal(data, &head.eventHead)
	}
	// An event on another job's subject (a consumer someone pointed at
	// the wrong deliver subject) is dropped, never shown as this job's.
	if err != nil || head.Seq == 0 || head.JobID != id {
		return Msg{}, false
	}
	m := Msg{jobID: id, owner: head.Owner, seq: head.Seq, raw: data, terminal: head.Status.Terminal(), stamped: head.Time.UnixNano()}
	if frame != nil {
		m.frame = frame(id, data, false)
	}
	return m, true
}

// eventHead is what the node reads of every event.
type eventHead struct {
	JobID  string      `json:"job_id"`
	Seq    uint64      `json:"seq"`
	Status jobs.Status `json:"status"`
	Time   time.Time   `json:"time"`
}

// join registers a watcher; it returns false when the node is closing.
func (n *Node) join(b *outbox) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closing {
		return false
	}
	n.watchers[b] = struct{}{}
	n.sessions.Add(1)
	return true
}

// leave drops a watcher and all its watches.
func (n *Node) leave(b *outbox, watching map[string]bool) {
	for id := range watching {
		n.unwatch(id, b)
	}
	n.mu.Lock()
	delete(n.watchers, b)
	n.mu.Unlock()
	n.sessions.Done()
}

// watch adds c to job id's watchers, subscribing to the job if c is the
// gateway's first watcher of it. id must be valid.
func (n *Node) watch(id string, b *outbox) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	t := n.topics[id]
	if t == nil {
		subject := jobs.AllProgress
		if id != jobs.AllProgress {
			subject = jobs.ProgressSubject(id)
		}
		sub, err := n.nc.ChanSubscribe(subject, n.shard(id))
		if err != nil {
			return err
		}
		t = &topic{sub: sub, watchers: map[*outbox]struct{}{}}
		n.topics[id] = t
	}
	if _, already := t.watchers[b]; !already {
		t.watchers[b] = struct{}{}
		n.metrics.watches.Inc()
	}
	return nil
}

// watchAll adds b to the feed of every job's events (for dashboards): one
// wildcard subscription, shared by all such watchers of this gateway.
func (n *Node) watchAll(b *outbox) error {
	return n.watch(jobs.AllProgress, b)
}

// unwatch removes c from job id's watchers, unsubscribing after the last.
func (n *Node) unwatch(id string, b *outbox) {
	n.mu.Lock()
	defer n.mu.Unlock()
	t := n.topics[id]
	if t == nil {
		return
	}
	if _, ok := t.watchers[b]; ok {
		delete(t.watchers, b)
		n.metrics.watches.Dec()
	}
	if len(t.watchers) == 0 {
		_ = t.sub.Unsubscribe()
		delete(n.topics, id)
	}
}

// CloseAll closes every session with ErrShuttingDown and refuses new ones.
func (n *Node) CloseAll() {
	n.mu.Lock()
	n.closing = true
	for b := range n.watchers {
		b.close(ErrShuttingDown)
	}
	n.mu.Unlock()
}

// Wait returns when every session has ended, then stops the
// dispatchers.
func (n *Node) Wait() {
	n.sessions.Wait()
	n.mu.Lock()
	for id, t := range n.topics {
		_ = t.sub.Unsubscribe()
		delete(n.topics, id)
	}
	n.mu.Unlock()
	n.nc.RemoveStatusListener(n.reconnected)
	close(n.stop)
	n.dispatchers.Wait()
}

// Stats are the node's counters at one moment: the place for its metrics.
type Stats struct {
	Sessions      int // open sessions (WebSockets, SSE streams)
	Subscriptions int // jobs this node is subscribed to (the feed of every job counts as one)
	// MostControlWaiting is the most replies waiting in one session; a
	// session stops reading its client's requests at MaxControl.
	MostControlWaiting int
}

// Stats counts what the node holds now.
func (n *Node) Stats() Stats {
	n.mu.RLock()
	defer n.mu.RUnlock()
	st := Stats{Sessions: len(n.watchers), Subscriptions: len(n.topics)}
	for b := range n.watchers {
		b.mu.Lock()
		st.MostControlWaiting = max(st.MostControlWaiting, len(b.ctrl))
		b.mu.Unlock()
	}
	return st
}
