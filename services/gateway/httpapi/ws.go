package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/jobwire/jobwire/services/gateway/live"
	"github.com/jobwire/jobwire/shared/jobs"
)

// maxClientMessage is the most bytes a client message may have.
const maxClientMessage = 4096

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

// handleWebSocket is GET /ws: a WebSocket over which the client watches
// jobs (clientMessage) and gets their events (eventFrame) and the errors
// of its requests (errorMessage).
func handleWebSocket(g *Gateway) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := principalFrom(r.Context())
		if err := g.slots.acquire(p); err != nil {
			writeError(w, err)
			return
		}
		liftBodyDeadline(w)
		cw := &corkingWriter{ResponseWriter: w, timeout: g.cfg.WriteTimeout}
		ws, err := websocket.Accept(cw, r, &websocket.AcceptOptions{
			OriginPatterns: g.cfg.AllowedOrigins, Subprotocols: []string{wsSubprotocol},
		})
		if err != nil {
			g.slots.release(p)
			return // Accept has answered
		}
		ws.SetReadLimit(maxClientMessage)
		s, err := g.live.NewSession(context.Background(), p.caller())
		if err != nil {
			_ = ws.Close(closeStatus(err))
			g.slots.release(p)
			return
		}
		// The connection is hijacked, so the handler can return: its
		// request, headers, contexts and the stack grown by the middleware
		// are freed, and an idle watcher costs only its session's two small
		// goroutines. The node tracks the session until it ends.
		g.metrics.websockets.Inc()
		go func() {
			defer g.slots.release(p)
			defer g.metrics.websockets.Dec()
			serveWebSocket(ws, cw.conn, s, g.cfg.WriteTimeout)
		}()
	}
}

// serveWebSocket runs one WebSocket session: a reader for the client's
// requests and a writer for its outbox, until either ends.
func serveWebSocket(ws *websocket.Conn, cc *corkedConn, s *live.Session, writeTimeout time.Duration) {
	// Reads get their own context, because coder/websocket drops the
	// connection without a close frame when a Read's context ends.
	readCtx, stopReading := context.WithCancel(context.Background())
	defer stopReading()
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		defer s.Close(nil)
		readLoop(readCtx, ws, s)
	}()
	s.WriteLoop(writeTimeout, func(m live.Msg) error {
		// The frames ready now leave together, at the flush. Every write to
		// the socket has a deadline of its own (the cork's), so the write
		// needs no context: with one, coder/websocket would register and
		// drop a callback on it for every message.
		cc.cork()
		return ws.Write(context.Background(), websocket.MessageText, m.Frame())
	}, cc.uncork)
	_ = cc.uncork()
	if r := s.Reason(); r != nil {
		_ = ws.Close(closeStatus(r))
	} else {
		_ = ws.CloseNow()
	}
	stopReading()
	<-readerDone
	s.End()
}

// readLoop handles the client's watch and unwatch requests until the
// connection ends.
func readLoop(readCtx context.Context, ws *websocket.Conn, s *live.Session) {
	for {
		typ, data, err := ws.Read(readCtx)
		if err != nil {
			return
		}
		if typ == websocket.MessageText && !utf8.Valid(data) {
			s.Close(errNotUTF8) // RFC 6455 section 8.1
			return
		}
		var m clientMessage
		if typ != websocket.MessageText || json.Unmarshal(data, &m) != nil {
			sendError(s, "", errNotJSON)
			continue
		}
		switch m.Op {
		case "watch":
			onFreshStack(func() {
				if err := s.Watch(m.JobID, m.AfterSeq); err != nil {
					sendError(s, m.JobID, err)
				}
			})
		case "watch_all":
			if err := s.WatchAll(); err != nil {
				sendError(s, "", err)
			}
		case "unwatch_all":
			s.UnwatchAll()
		case "watch_mine":
			if err := s.WatchMine(); err != nil {
				sendError(s, "", err)
			}
		case "unwatch_mine":
			s.UnwatchMine()
		case "unwatch":
			s.Unwatch(m.JobID)
		default:
			sendError(s, m.JobID, errUnknownOp)
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

// sendError answers a request of the client with err's code and message
// (see wsErrorOf); it waits while many answers wait to be written.
func sendError(s *live.Session, id string, err error) {
	s.Reply(errorFrame(id, wsErrorOf(err)))
}

// errorFrame is the error message about job id (cut to a sane length: it
// echoes what the client sent).
func errorFrame(id string, ae *apiError) []byte {
	if len(id) > 2*jobs.MaxIDLen {
		id = id[:2*jobs.MaxIDLen]
	}
	b, _ := json.Marshal(errorMessage{Op: "error", JobID: id, Code: ae.Code, Message: ae.Message})
	return b
}

// eventFrame is how the WebSocket sends a stored event:
// {"op":"event","job_id":"<id>","event":<event>}, with "truncated":true
// before "event" for a snapshot sent in place of history that has aged
// out. The live node makes it once per event for every watcher. The id is
// a validated subject token, so it needs no JSON escaping.
func eventFrame(id string, event []byte, truncated bool) []byte {
	b := make([]byte, 0, len(event)+len(id)+60)
	b = append(b, `{"op":"event","job_id":"`...)
	b = append(b, id...)
	b = append(b, '"')
	if truncated {
		b = append(b, `,"truncated":true`...)
	}
	b = append(b, `,"event":`...)
	b = append(b, event...)
	return append(b, '}')
}
