package main

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

// gateway holds what the HTTP handlers depend on.
type gateway struct {
	cfg     Config
	log     *slog.Logger
	nc      *nats.Conn
	js      jetstream.JetStream
	streams *jobs.Streams
	ops     *jobops.Service
	auth    *authenticator
	// crossOrigin refuses cross-site state changes; submitLimit rate-limits
	// submissions per owner (and per address for anonymous sessions);
	// slots counts open watchers.
	crossOrigin *http.CrossOriginProtection
	submitLimit func(http.Handler) http.Handler
	slots       *watchSlots
	live        *live.Node
	ready       atomic.Bool
	stop        context.CancelFunc
	closed      sync.Once
}

// newGateway creates the streams (waiting for NATS as long as ctx allows),
// starts following the job types runners register, and is ready.
func newGateway(ctx context.Context, nc *nats.Conn, cfg Config, log *slog.Logger) (*gateway, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	var streams *jobs.Streams
	if err := natsconn.Retry(ctx, log, "create streams", func(ctx context.Context) (err error) {
		streams, err = cfg.Topology().CreateOrUpdate(ctx, js)
		return err
	}); err != nil {
		return nil, err
	}
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	auth, err := newAuthenticator(ctx, cfg)
	if err != nil {
		stop()
		return nil, err
	}
	cop, err := newCrossOriginProtection(cfg.AllowedOrigins)
	if err != nil {
		stop()
		return nil, err
	}
	ops, err := jobops.New(bg, nc, js, streams, jobops.Config{MaxJSONDepth: int(cfg.MaxJSONDepth), CursorKey: auth.sessionKey}, log)
	if err != nil {
		stop()
		return nil, err
	}
	gw := &gateway{
		cfg: cfg, log: log, nc: nc, js: js, streams: streams, ops: ops,
		live: live.NewNode(nc, ops, eventFrame, log), stop: stop, auth: auth, crossOrigin: cop,
		submitLimit: newSubmitLimit(int(cfg.SubmitRate), int(cfg.AddrSubmitRate)),
		slots:       newWatchSlots(int(cfg.MaxConnsPerOwner), int(cfg.AddrMaxConns), int(cfg.MaxConns)),
	}
	gw.ready.Store(true)
	return gw, nil
}

// Handler is the gateway's HTTP handler.
func (g *gateway) Handler() http.Handler { return NewServer(g) }

// Close stops background work and closes every WebSocket.
func (g *gateway) Close() {
	g.closed.Do(func() {
		g.stop()
		g.ops.Close()
		g.live.CloseAll()
		g.live.Wait()
	})
}
