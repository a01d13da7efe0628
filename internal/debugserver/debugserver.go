// Package debugserver serves Go's runtime profiles (net/http/pprof) on a
// listener of their own, apart from the public HTTP API, so that profiling
// is never reachable through the address users are given.
package debugserver

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"

	"github.com/jobwire/jobwire/internal/sideserver"
)

// Handler serves the pprof index and profiles under /debug/pprof/.
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// Start listens on addr and serves Handler. stop closes the server and
// waits for it; profiles in flight are cut off (this is a debug port).
func Start(addr string, log *slog.Logger) (bound net.Addr, stop func(), err error) {
	return sideserver.Start(addr, Handler(), "debug server (pprof)", log)
}
