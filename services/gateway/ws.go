package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go/jetstream"
)

// WebSocket limits.
const (
	clientQueue      = 256              // frames waiting per connection
	maxWatches       = 1000             // jobs one connection may watch
	maxClientMessage = 4096             // bytes per client message
	writeTimeout     = 10 * time.Second // per frame
)

// Close codes a client may see, besides the standard ones.
const (
	// closeTooSlow: the client did not read fast enough; it can reconnect
	// and watch again.
	closeTooSlow websocket.StatusCode = 4008
)

type closeReason struct {
	code websocket.StatusCode
	text string
}

var (
	closeGoingAway = closeReason{websocket.StatusGoingAway, "server shutting down, reconnect"}
	closeSlow      = closeReason{closeTooSlow, "too slow: reconnect and watch again"}
)

// outMsg is one frame for a client. Events carry their job and seq, so the
// writer sends each job's events in order and never twice; reset forgets a
// job's last seq (after an unwatch).
type outMsg struct {
	jobID string
	seq   uint64
	frame []byte
	reset bool
}

// client is one WebSocket connection.
type client struct {
	ws     *websocket.Conn
	queue  chan outMsg
	cancel context.CancelFunc

	mu     sync.Mutex
	reason closeReason // set by the first close
}

// enqueue hands a frame to the writer without blocking; a client whose
// queue is full is closed (it can reconnect and watch again).
func (c *client) enqueue(m outMsg) {
	select {
	case c.queue <- m:
	default:
		c.close(closeSlow)
	}
}

// close ends the connection with reason (the first reason given wins).
func (c *client) close(r closeReason) {
	c.mu.Lock()
	if c.reason.code == 0 {
		c.reason = r
	}
	c.mu.Unlock()
	c.cancel()
}

func (c *client) closeReason() closeReason {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

// clientMessage is what a client sends.
type clientMessage struct {
	Op       string `json:"op"`
	JobID    string `json:"job_id"`
	AfterSeq uint64 `json:"after_seq,omitempty"`
}

// errorMessage is what the server sends about a failed request.
type errorMessage struct {
	Op      string `json:"op"`
	JobID   string `json:"job_id"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func handleWebSocket(g *gateway) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: g.cfg.AllowedOrigins})
		if err != nil {
			return // Accept has answered
		}
		ws.SetReadLimit(maxClientMessage)
		// ctx is the connection's life: close() or a failed read ends it.
		// Reads get their own context, because coder/websocket drops the
		// connection without a close frame when a Read's context ends.
		ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
		defer cancel()
		readCtx, stopReading := context.WithCancel(context.WithoutCancel(r.Context()))
		defer stopReading()
		c := &client{ws: ws, queue: make(chan outMsg, clientQueue), cancel: cancel}
		if !g.hub.join(c) {
			_ = ws.Close(closeGoingAway.code, closeGoingAway.text)
			return
		}
		watching := map[string]bool{}
		readerDone := make(chan struct{})
		go func() {
			defer close(readerDone)
			g.readLoop(readCtx, ctx, c, watching)
		}()
		c.writeLoop(ctx)
		if r := c.closeReason(); r.code != 0 {
			_ = ws.Close(r.code, r.text)
		} else {
			_ = ws.CloseNow()
		}
		stopReading()
		<-readerDone
		g.hub.leave(c, watching)
	}
}

// writeLoop sends queued frames until ctx ends.
func (c *client) writeLoop(ctx context.Context) {
	defer c.cancel()
	last := map[string]uint64{}
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-c.queue:
			if m.reset {
				delete(last, m.jobID)
				continue
			}
			if m.seq > 0 {
				if m.seq <= last[m.jobID] {
					continue // already sent (snapshot and live event crossed)
				}
				last[m.jobID] = m.seq
			}
			wctx, cancel := context.WithTimeout(ctx, writeTimeout)
			err := c.ws.Write(wctx, websocket.MessageText, m.frame)
			cancel()
			if err != nil {
				return
			}
		}
	}
}

// readLoop handles the client's watch and unwatch requests until the
// connection ends.
func (g *gateway) readLoop(readCtx, ctx context.Context, c *client, watching map[string]bool) {
	defer c.cancel()
	for {
		typ, data, err := c.ws.Read(readCtx)
		if err != nil {
			return
		}
		var m clientMessage
		if typ != websocket.MessageText || json.Unmarshal(data, &m) != nil {
			c.sendError("", "bad_request", `send JSON text messages like {"op":"watch","job_id":"..."}`)
			continue
		}
		switch m.Op {
		case "watch":
			g.watch(ctx, c, watching, m.JobID)
		case "unwatch":
			if watching[m.JobID] {
				delete(watching, m.JobID)
				g.hub.unwatch(m.JobID, c)
				c.enqueue(outMsg{jobID: m.JobID, reset: true})
			}
		default:
			c.sendError(m.JobID, "bad_request", `"op" must be "watch" or "unwatch"`)
		}
	}
}

// watch subscribes c to a job, then sends the job's current state; live
// events that arrive meanwhile are ordered and deduplicated by seq in the
// writer, so the client sees the snapshot and then every later event.
func (g *gateway) watch(ctx context.Context, c *client, watching map[string]bool, id string) {
	if err := jobs.ValidateID(id); err != nil {
		c.sendError(id, "invalid_id", err.Error())
		return
	}
	if !watching[id] && len(watching) >= maxWatches {
		c.sendError(id, "too_many_watches", "this connection already watches the most jobs it may")
		return
	}
	if err := g.hub.watch(id, c); err != nil {
		c.sendError(id, "unavailable", "cannot subscribe right now, try again")
		return
	}
	watching[id] = true
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := g.streams.Events.GetLastMsgForSubject(rctx, jobs.ProgressSubject(id))
	if err != nil {
		delete(watching, id)
		g.hub.unwatch(id, c)
		code, msg := "not_found", "no job with id "+id
		if !errors.Is(err, jetstream.ErrMsgNotFound) {
			code, msg = "unavailable", "cannot read the job's state right now, try again"
		}
		c.sendError(id, code, msg)
		return
	}
	var head struct {
		Seq uint64 `json:"seq"`
	}
	_ = json.Unmarshal(m.Data, &head)
	c.enqueue(outMsg{jobID: id, seq: head.Seq, frame: eventFrame(id, m.Data)})
}

func (c *client) sendError(id, code, msg string) {
	if len(id) > 2*jobs.MaxIDLen {
		id = id[:2*jobs.MaxIDLen]
	}
	b, _ := json.Marshal(errorMessage{Op: "error", JobID: id, Code: code, Message: msg})
	c.enqueue(outMsg{frame: b})
}
