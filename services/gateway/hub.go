package main

import (
	"encoding/json"
	"hash/maphash"
	"log/slog"
	"runtime"
	"strconv"
	"sync"

	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// hub bridges jobs.<id>.progress to watchers. It holds one NATS
// subscription per job that at least one of its own watchers follows, so a
// gateway receives only the progress its watchers need. Messages are
// dispatched by a fixed set of goroutines (a job always on the same one,
// which keeps each job's events in order), encoded once per message and
// handed to every watcher's bounded queue without ever blocking. After
// every reconnect to NATS it has each watcher catch its jobs up from the
// stream: events stored while the gateway was away never arrive live.
type hub struct {
	nc     *nats.Conn
	log    *slog.Logger
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
}

type topic struct {
	sub      *nats.Subscription
	watchers map[*outbox]struct{}
}

// shardQueue is how many messages may wait per dispatcher before NATS
// reports a slow consumer.
const shardQueue = 8192

func newHub(nc *nats.Conn, log *slog.Logger) *hub {
	h := &hub{nc: nc, log: log, seed: maphash.MakeSeed(), topics: map[string]*topic{}, watchers: map[*outbox]struct{}{}, stop: make(chan struct{})}
	h.reconnected = nc.StatusChanged(nats.CONNECTED)
	h.dispatchers.Go(h.catchUpOnReconnect)
	h.shards = make([]chan *nats.Msg, runtime.GOMAXPROCS(0))
	for i := range h.shards {
		ch := make(chan *nats.Msg, shardQueue)
		h.shards[i] = ch
		h.dispatchers.Go(func() { h.dispatch(ch) })
	}
	return h
}

func (h *hub) shard(id string) chan *nats.Msg {
	return h.shards[maphash.String(h.seed, id)%uint64(len(h.shards))]
}

// catchUpOnReconnect has every watcher catch up after each reconnect.
// (The subscriptions are sent again before the connection reports
// CONNECTED, so whatever is stored after the catch-up's reads arrives live.)
func (h *hub) catchUpOnReconnect() {
	for {
		select {
		case <-h.reconnected:
		case <-h.stop:
			return
		}
		h.mu.RLock()
		boxes := make([]*outbox, 0, len(h.watchers))
		for b := range h.watchers {
			boxes = append(boxes, b)
		}
		h.mu.RUnlock()
		for _, b := range boxes {
			b.catchUpAll()
		}
	}
}

// dispatch fans each message of its shard out to the job's watchers.
func (h *hub) dispatch(ch chan *nats.Msg) {
	for {
		var m *nats.Msg
		select {
		case m = <-ch:
		case <-h.stop:
			return
		}
		out, ok := eventMsg(m.Subject, m.Data)
		if !ok {
			h.log.Warn("dropping a malformed event", "subject", m.Subject)
			continue
		}
		out.streamSeq, _ = strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		key := out.jobID
		if m.Sub != nil && m.Sub.Subject == jobs.AllProgress {
			key = jobs.AllProgress // the "every job" feed
		}
		h.mu.RLock()
		if t := h.topics[key]; t != nil {
			for b := range t.watchers {
				b.live(out)
			}
		}
		h.mu.RUnlock()
	}
}

// eventMsg prepares a stored event for every watcher at once.
func eventMsg(subject string, data []byte) (outMsg, bool) {
	id, ok := jobs.IDFromProgressSubject(subject) // live
	if !ok {
		id, ok = jobs.IDFromEventSubject(subject) // read from the stream
	}
	if !ok {
		return outMsg{}, false
	}
	var head struct {
		JobID  string      `json:"job_id"`
		Seq    uint64      `json:"seq"`
		Status jobs.Status `json:"status"`
	}
	// An event on another job's subject (a consumer someone pointed at
	// the wrong deliver subject) is dropped, never shown as this job's.
	if err := json.Unmarshal(data, &head); err != nil || head.Seq == 0 || head.JobID != id {
		return outMsg{}, false
	}
	return outMsg{jobID: id, seq: head.Seq, raw: data, frame: eventFrame(id, data), terminal: head.Status.Terminal()}, true
}

// eventFrame wraps a stored event for the WebSocket:
// {"op":"event","job_id":"<id>","event":<event>}. The id is a validated
// subject token, so it needs no JSON escaping.
func eventFrame(id string, event []byte) []byte {
	b := make([]byte, 0, len(event)+len(id)+40)
	b = append(b, `{"op":"event","job_id":"`...)
	b = append(b, id...)
	b = append(b, `","event":`...)
	b = append(b, event...)
	return append(b, '}')
}

// join registers a watcher; it returns false when the hub is closing.
func (h *hub) join(b *outbox) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return false
	}
	h.watchers[b] = struct{}{}
	h.sessions.Add(1)
	return true
}

// leave drops a watcher and all its watches.
func (h *hub) leave(b *outbox, watching map[string]bool) {
	for id := range watching {
		h.unwatch(id, b)
	}
	h.mu.Lock()
	delete(h.watchers, b)
	h.mu.Unlock()
	h.sessions.Done()
}

// watch adds c to job id's watchers, subscribing to the job if c is the
// gateway's first watcher of it. id must be valid.
func (h *hub) watch(id string, b *outbox) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.topics[id]
	if t == nil {
		subject := jobs.AllProgress
		if id != jobs.AllProgress {
			subject = jobs.ProgressSubject(id)
		}
		sub, err := h.nc.ChanSubscribe(subject, h.shard(id))
		if err != nil {
			return err
		}
		t = &topic{sub: sub, watchers: map[*outbox]struct{}{}}
		h.topics[id] = t
	}
	t.watchers[b] = struct{}{}
	return nil
}

// watchAll adds b to the feed of every job's events (for dashboards): one
// wildcard subscription, shared by all such watchers of this gateway.
func (h *hub) watchAll(b *outbox) error {
	return h.watch(jobs.AllProgress, b)
}

// unwatch removes c from job id's watchers, unsubscribing after the last.
func (h *hub) unwatch(id string, b *outbox) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.topics[id]
	if t == nil {
		return
	}
	delete(t.watchers, b)
	if len(t.watchers) == 0 {
		_ = t.sub.Unsubscribe()
		delete(h.topics, id)
	}
}

// subscriptions is how many jobs this gateway is subscribed to.
func (h *hub) subscriptions() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.topics)
}

// sessionCount is how many watchers (WebSockets, SSE streams) are open.
func (h *hub) sessionCount() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.watchers)
}

// CloseAll closes every WebSocket with "going away" and refuses new ones.
func (h *hub) CloseAll() {
	h.mu.Lock()
	h.closing = true
	for b := range h.watchers {
		b.close(closeGoingAway)
	}
	h.mu.Unlock()
}

// Wait returns when every WebSocket session has ended, then stops the
// dispatchers.
func (h *hub) Wait() {
	h.sessions.Wait()
	h.mu.Lock()
	for id, t := range h.topics {
		_ = t.sub.Unsubscribe()
		delete(h.topics, id)
	}
	h.mu.Unlock()
	h.nc.RemoveStatusListener(h.reconnected)
	close(h.stop)
	h.dispatchers.Wait()
}
