package main

import (
	"encoding/json"
	"log/slog"
	"net"
	"net/http"

	"github.com/jobwire/jobwire/internal/sideserver"
)

// startHealth serves the runner's probes on addr, apart from everything
// else: /healthz answers 200 while the process runs; /readyz answers 200
// once ready returns nil (connected to NATS, consumers bound), else 503
// with the reason. stop closes the listener.
func startHealth(addr string, ready func() error, log *slog.Logger) (bound net.Addr, stop func(), err error) {
	return sideserver.Start(addr, healthHandler(ready), "health server", log)
}

func healthHandler(ready func() error) http.Handler {
	reply := func(w http.ResponseWriter, code int, status string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"status": status})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { reply(w, http.StatusOK, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := ready(); err != nil {
			reply(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		reply(w, http.StatusOK, "ready")
	})
	return mux
}
