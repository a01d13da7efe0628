// Package httpapi is the gateway's transport: the HTTP API, the pages, the
// WebSocket and the SSE stream, with authentication and limits. Its
// handlers are thin adapters: the job rules are jobops', the fan-out of
// events is live's, and errors.go answers their errors.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/jobwire/jobwire/internal/natsconn"
	"github.com/jobwire/jobwire/services/gateway/jobops"
	"github.com/jobwire/jobwire/services/gateway/live"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Gateway holds what the HTTP handlers depend on.
type Gateway struct {
	cfg     Config
	nc      *nats.Conn
	streams *jobs.Streams
	ops     *jobops.Service
	live    *live.Node
	auth    *authenticator
	// crossOrigin refuses cross-site state changes; submitLimit rate-limits
	// submissions per owner (and per address for anonymous sessions);
	// slots counts open watchers.
	crossOrigin *http.CrossOriginProtection
	allowed     allowedOrigins // ALLOWED_ORIGINS, for CORS
	submitLimit func(http.Handler) http.Handler
	slots       *watchSlots
	metrics     *httpMetrics
	ready       atomic.Bool
	closed      sync.Once
}

// New creates the streams, or with TOPOLOGY=check only checks them
// (waiting for NATS and for them as long as ctx allows),
// starts following the job types runners register and the jobs watched,
// and is ready.
func New(ctx context.Context, nc *nats.Conn, cfg Config, log *slog.Logger) (*Gateway, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	var streams *jobs.Streams
	open, what := cfg.Topology().CreateOrUpdate, "create streams"
	if cfg.TopologyMode.CheckOnly() {
		open, what = cfg.Topology().Check, "check streams"
	}
	if err := natsconn.Retry(ctx, log, what, func(ctx context.Context) (err error) {
		streams, err = open(ctx, js)
		return err
	}); err != nil {
		return nil, err
	}
	auth, err := newAuthenticator(ctx, cfg)
	if err != nil {
		return nil, err
	}
	cop, err := newCrossOriginProtection(cfg.AllowedOrigins)
	if err != nil {
		return nil, err
	}
	ops, err := jobops.New(ctx, nc, js, streams, jobops.Config{MaxJSONDepth: int(cfg.MaxJSONDepth), CursorKey: auth.sessionKey, NoIndexer: cfg.DisableIndexer}, log)
	if err != nil {
		return nil, err
	}
	m := newHTTPMetrics()
	auth.sessionsRefused = m.newSession
	g := &Gateway{
		cfg: cfg, nc: nc, streams: streams, ops: ops, live: live.NewNode(nc, ops, eventFrame, log, live.WithTracerProvider(cfg.TracerProvider)), auth: auth, crossOrigin: cop, allowed: newAllowedOrigins(cfg.AllowedOrigins),
		submitLimit: newSubmitLimit(int(cfg.SubmitRate), int(cfg.AddrSubmitRate), m),
		slots:       newWatchSlots(int(cfg.MaxConnsPerOwner), int(cfg.AddrMaxConns), int(cfg.MaxConns), m),
		metrics:     m,
	}
	g.ready.Store(true)
	return g, nil
}

// Handler is the gateway's HTTP handler (routes.go).
func (g *Gateway) Handler() http.Handler { return NewServer(g) }

// Live is the node that fans events out to the WebSockets and SSE streams.
func (g *Gateway) Live() *live.Node { return g.live }

// SetReady sets what /readyz answers; false on shutdown, before the
// server stops taking requests.
func (g *Gateway) SetReady(ready bool) { g.ready.Store(ready) }

// Close stops background work and closes every WebSocket.
func (g *Gateway) Close() {
	g.closed.Do(func() {
		g.ops.Close()
		g.live.CloseAll()
		g.live.Wait()
	})
}
