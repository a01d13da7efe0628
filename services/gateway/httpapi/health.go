package httpapi

import (
	"net/http"
)

func handleHealthz() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		encode(w, http.StatusOK, map[string]string{"status": "ok"})
	}
}

func handleReadyz(g *Gateway) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch {
		case !g.ready.Load():
			writeError(w, errShuttingDown)
		case !g.nc.IsConnected():
			writeError(w, errorf(http.StatusServiceUnavailable, "unavailable", "not connected to NATS"))
		default:
			if _, err := g.streams.Events.Info(r.Context()); err != nil {
				writeError(w, errUnavailable(err))
				return
			}
			encode(w, http.StatusOK, map[string]string{"status": "ready"})
		}
	}
}
