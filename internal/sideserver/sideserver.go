// Package sideserver serves a handler on a listener of its own, apart
// from the address users are given: Go's profiles (DEBUG_ADDR), the
// Prometheus metrics (METRICS_ADDR), the runner's probes (HEALTH_ADDR).
package sideserver

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Start listens on addr and serves h; name says what it serves in the
// log ("<name> listening" with the bound address, and any error). stop
// closes the server, cutting off what is in flight, and waits for it.
func Start(addr string, h http.Handler, name string, log *slog.Logger) (bound net.Addr, stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Warn(name, "err", err)
		}
	}()
	log.Info(name+" listening", "addr", ln.Addr().String())
	return ln.Addr(), func() { _ = srv.Close(); <-done }, nil
}
