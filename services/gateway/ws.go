package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/jobwire/jobwire/shared/jobs"
)

// WebSocket limits.
const (
	maxWatches       = 1000 // jobs one connection may watch
	maxClientMessage = 4096 // bytes per client message
)

// Close codes a client may see, besides the standard ones.
const (
	// closeTooSlow: the client did not read fast enough; it can reconnect
	// and resume with after_seq.
	closeTooSlow websocket.StatusCode = 4008
)

type closeReason struct {
	code websocket.StatusCode
	text string
}

var (
	closeGoingAway = closeReason{websocket.StatusGoingAway, "server shutting down, reconnect"}
	closeSlow      = closeReason{closeTooSlow, "too slow: reconnect and resume with after_seq"}
	closeNotUTF8   = closeReason{websocket.StatusInvalidFramePayloadData, "text messages must be UTF-8"}
)

// conn is the life of one watcher connection: the first close reason
// given wins, and closing cancels its context.
type conn struct {
	cancel context.CancelFunc
	mu     sync.Mutex
	reason closeReason
}

func (c *conn) close(r closeReason) {
	c.mu.Lock()
	if c.reason.code == 0 {
		c.reason = r
	}
	c.mu.Unlock()
	c.cancel()
}

func (c *conn) closeReason() closeReason {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

// clientMessage is what a WebSocket client sends.
type clientMessage struct {
	Op       string  `json:"op"`
	JobID    string  `json:"job_id"`
	AfterSeq *uint64 `json:"after_seq,omitempty"`
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
		p := principalFrom(r.Context())
		if err := g.slots.acquire(p); err != nil {
			writeError(w, err)
			return
		}
		liftBodyDeadline(w)
		cw := &corkingWriter{ResponseWriter: w, timeout: g.cfg.WriteTimeout}
		ws, err := websocket.Accept(cw, r, &websocket.AcceptOptions{OriginPatterns: g.cfg.AllowedOrigins})
		if err != nil {
			g.slots.release(p)
			return // Accept has answered
		}
		ws.SetReadLimit(maxClientMessage)
		wr, ok := g.startWatcher(context.Background())
		if !ok {
			_ = ws.Close(closeGoingAway.code, closeGoingAway.text)
			g.slots.release(p)
			return
		}
		// The connection is hijacked, so the handler can return: its
		// request, headers, contexts and the stack grown by the middleware
		// are freed, and an idle watcher costs only its session's two small
		// goroutines. The hub tracks the session until it ends.
		go func() {
			defer g.slots.release(p)
			g.serveWatcher(ws, cw.conn, wr, p)
		}()
	}
}

// serveWatcher runs one WebSocket session: a reader for the client's
// requests and a writer for its outbox, until either ends.
func (g *gateway) serveWatcher(ws *websocket.Conn, cc *corkedConn, wr *watcher, p principal) {
	// Reads get their own context, because coder/websocket drops the
	// connection without a close frame when a Read's context ends.
	readCtx, stopReading := context.WithCancel(context.Background())
	defer stopReading()
	ctx, c, box := wr.ctx, wr.c, wr.box
	watching := map[string]bool{}
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		defer c.cancel()
		g.readLoop(readCtx, ctx, p, ws, box, watching)
	}()
	writeLoop(ctx, box, g.cfg.WriteTimeout, c, func(m outMsg) error {
		// The frames ready now leave together, at the flush. Every write to
		// the socket has a deadline of its own (the cork's), so the write
		// needs no context: with one, coder/websocket would register and
		// drop a callback on it for every message.
		cc.cork()
		return ws.Write(context.Background(), websocket.MessageText, m.frame)
	}, cc.uncork)
	_ = cc.uncork()
	if r := c.closeReason(); r.code != 0 {
		_ = ws.Close(r.code, r.text)
	} else {
		_ = ws.CloseNow()
	}
	stopReading()
	<-readerDone
	g.endWatcher(wr, watching)
}

// writeLoop writes what box holds until ctx ends or a write fails, and
// flushes whenever it has written everything the box held: the events
// that are ready leave together. A write or flush that takes longer than
// timeout closes the watcher as too slow; the deadline is one reusable
// timer, not a context per message.
func writeLoop(ctx context.Context, box *outbox, timeout time.Duration, c *conn, write func(outMsg) error, flush func() error) {
	defer c.cancel()
	deadline := time.AfterFunc(time.Hour, func() { c.close(closeSlow) })
	defer deadline.Stop()
	dirty := false
	for ctx.Err() == nil { // a closed session stops, however much is queued
		m, ok := box.next()
		if !ok {
			if dirty {
				deadline.Reset(timeout)
				err := flush()
				deadline.Stop()
				if err != nil {
					if errors.Is(err, os.ErrDeadlineExceeded) {
						c.close(closeSlow)
					}
					return
				}
				dirty = false
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
	}
}

// readLoop handles the client's watch and unwatch requests until the
// connection ends.
func (g *gateway) readLoop(readCtx, ctx context.Context, p principal, ws *websocket.Conn, box *outbox, watching map[string]bool) {
	for {
		typ, data, err := ws.Read(readCtx)
		if err != nil {
			return
		}
		if typ == websocket.MessageText && !utf8.Valid(data) {
			box.close(closeNotUTF8) // RFC 6455 section 8.1
			return
		}
		var m clientMessage
		if typ != websocket.MessageText || json.Unmarshal(data, &m) != nil {
			sendError(ctx, box, "", "bad_request", `send JSON text messages like {"op":"watch","job_id":"..."}`)
			continue
		}
		switch m.Op {
		case "watch":
			onFreshStack(func() { g.watch(ctx, p, box, watching, m.JobID, m.AfterSeq) })
		case "watch_all":
			if !p.Admin {
				sendError(ctx, box, "", "forbidden", "watching every job is for admins")
				continue
			}
			if err := g.hub.watchAll(box); err != nil {
				sendError(ctx, box, "", "unavailable", "cannot subscribe right now, try again")
				continue
			}
			box.setAll(true)
			watching[jobs.AllProgress] = true
		case "unwatch_all":
			if watching[jobs.AllProgress] {
				delete(watching, jobs.AllProgress)
				g.hub.unwatch(jobs.AllProgress, box)
				box.setAll(false)
			}
		case "unwatch":
			if jobs.ValidateID(m.JobID) == nil && watching[m.JobID] {
				delete(watching, m.JobID)
				g.hub.unwatch(m.JobID, box)
				box.forget(m.JobID)
			}
		default:
			sendError(ctx, box, m.JobID, "bad_request", `"op" must be "watch", "unwatch", "watch_all" or "unwatch_all"`)
		}
	}
}

// onFreshStack runs f on a goroutine of its own and waits for it. Reading
// a job's state and history calls deep (NATS requests, JSON): on the
// connection's long-lived reader goroutine that would grow its stack for
// good, and idle watchers would each keep several KiB of stack they no
// longer use. The short-lived goroutine takes the growth with it.
func onFreshStack(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}

// watch starts following a job for this connection.
func (g *gateway) watch(ctx context.Context, p principal, box *outbox, watching map[string]bool, id string, afterSeq *uint64) {
	if err := jobs.ValidateID(id); err != nil {
		sendError(ctx, box, id, "invalid_id", err.Error())
		return
	}
	if !watching[id] && len(watching) >= maxWatches {
		sendError(ctx, box, id, "too_many_watches", "this connection already watches the most jobs it may")
		return
	}
	if err := g.follow(ctx, p, box, id, afterSeq); err != nil {
		ae := apiErrorOf(err)
		if ae == errInternal {
			ae = errUnavailable(err)
		}
		delete(watching, id)
		sendError(ctx, box, id, ae.Code, ae.Message)
		return
	}
	watching[id] = true
}

// sendError answers a request of the client; it waits while many answers
// wait to be written (see outbox.control).
func sendError(ctx context.Context, box *outbox, id, code, msg string) {
	if len(id) > 2*jobs.MaxIDLen {
		id = id[:2*jobs.MaxIDLen]
	}
	b, _ := json.Marshal(errorMessage{Op: "error", JobID: id, Code: code, Message: msg})
	box.control(ctx, outMsg{frame: b})
}
