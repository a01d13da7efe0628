package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jobwire/jobwire/services/gateway/live"
	"github.com/jobwire/jobwire/shared/jobs"
)

// handleEvents streams a job's events as Server-Sent Events: "id:" is the
// event's seq and "data:" the event JSON. With Last-Event-ID (or
// ?after_seq=N) it resumes after that seq; without, it starts with the
// current state. It ends after the final event. If the history asked for
// has aged out, an "event: truncated" message comes before the snapshot.
func handleEvents(g *Gateway) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := chi.URLParam(r, "id")
		if err := jobs.ValidateID(id); err != nil {
			writeError(w, err)
			return
		}
		afterSeq, err := resumePoint(r)
		if err != nil {
			writeError(w, err)
			return
		}
		p := principalFrom(r.Context())
		if err := g.slots.acquire(p); err != nil {
			writeError(w, err)
			return
		}
		defer g.slots.release(p)
		s, err := g.live.NewSession(r.Context(), p.caller())
		if err != nil {
			writeError(w, err)
			return
		}
		defer s.End()
		if err := s.Watch(id, afterSeq); err != nil {
			writeError(w, err)
			return
		}

		liftBodyDeadline(w)
		g.metrics.sseStreams.Inc()
		defer g.metrics.sseStreams.Dec()
		rc := http.NewResponseController(w)
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		_ = rc.Flush()
		buf := make([]byte, 0, 1024)
		s.WriteLoop(g.cfg.WriteTimeout, func(m live.Msg) error {
			_ = rc.SetWriteDeadline(time.Now().Add(g.cfg.WriteTimeout))
			buf = buf[:0]
			if m.Truncated() {
				buf = append(buf, "event: truncated\ndata: {}\n\n"...)
			}
			buf = append(buf, "id: "...)
			buf = strconv.AppendUint(buf, m.Seq(), 10)
			buf = append(buf, "\ndata: "...)
			buf = append(buf, m.Event()...)
			buf = append(buf, "\n\n"...)
			if _, err := w.Write(buf); err != nil {
				return err
			}
			if m.Terminal() {
				// The job's end: flush it and end the stream (the event
				// counts as delivered).
				_ = rc.Flush()
				s.Close(nil)
			}
			return nil
		}, func() error {
			_ = rc.SetWriteDeadline(time.Now().Add(g.cfg.WriteTimeout))
			return rc.Flush()
		})
	}
}

// resumePoint reads where a client resumes: Last-Event-ID, or ?after_seq=.
func resumePoint(r *http.Request) (*uint64, error) {
	s := r.Header.Get("Last-Event-ID")
	if s == "" {
		s = r.URL.Query().Get("after_seq")
	}
	if s == "" {
		return nil, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "bad_request", "Last-Event-ID / after_seq must be a sequence number")
	}
	return &n, nil
}
