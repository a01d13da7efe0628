package httpapi

import (
	"net/http"
	"time"
)

// NewHTTPServer is the gateway's HTTP server for h: slow or huge requests
// cannot hold it. Headers must arrive within ReadHeaderTimeout and fit in
// MaxHeaderBytes (else net/http answers 431 and closes); a body must
// arrive within BodyReadTimeout after them (408); an idle kept-alive
// connection is closed after IdleTimeout. Long-lived responses (WebSocket,
// SSE) lift the body deadline (see liftBodyDeadline).
func NewHTTPServer(cfg Config, h http.Handler) *http.Server {
	return &http.Server{
		Handler:           withBodyDeadline(h, cfg.BodyReadTimeout),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    int(cfg.MaxHeaderBytes),
	}
}

// withBodyDeadline gives each request's body d to arrive, counted from
// the end of its headers. Reading past it fails (decode answers 408); a
// body the handler leaves unread fails the same way, and the connection is
// closed.
func withBodyDeadline(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
		h.ServeHTTP(w, r)
	})
}

// liftBodyDeadline removes the body deadline of a long-lived response
// (WebSocket, SSE): its connection stays open as long as the client wants,
// and net/http would otherwise end the request when the deadline passes.
func liftBodyDeadline(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
}
