package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/jobwire/jobwire/internal/debugserver"
	"github.com/jobwire/jobwire/internal/envflag"
	"github.com/jobwire/jobwire/internal/natsconn"
	"github.com/jobwire/jobwire/internal/natsembed"
	"github.com/jobwire/jobwire/services/gateway/httpapi"
	"github.com/jobwire/jobwire/services/runner/jobtypes"
	"github.com/jobwire/jobwire/services/runner/worker"
)

// run is the whole gateway process; main only adds signals. It returns
// when ctx ends and everything has shut down.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, envflag.ErrHelp) {
		return nil // the usage is printed: asking for it is no failure
	}
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if cfg.DebugAddr != "" {
		_, stop, err := debugserver.Start(cfg.DebugAddr, log)
		if err != nil {
			return fmt.Errorf("debug server: %w", err)
		}
		defer stop()
	}

	natsURL := cfg.NATSURL
	if cfg.Dev {
		dir := filepath.Join(cfg.DataDir, "nats")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		ns, err := natsembed.Start(cfg.DevNATSAddr, dir)
		if err != nil {
			return fmt.Errorf("embedded nats server: %w", err)
		}
		defer natsembed.Stop(ns)
		natsURL = ns.ClientURL()
	}

	natsOpts, err := cfg.NATS.Options()
	if err != nil {
		return err
	}
	if cfg.Dev {
		natsOpts = nil // the embedded server has no users
	}
	nc, err := natsconn.Connect(ctx, natsURL, "jobwire-gateway", log, natsOpts...)
	if err != nil {
		return err
	}
	defer nc.Close()
	gw, err := httpapi.New(ctx, nc, cfg.Config, log)
	if err != nil {
		return err
	}
	defer gw.Close()

	var wg sync.WaitGroup
	defer wg.Wait()
	if cfg.Dev {
		rnc, err := natsconn.Connect(ctx, natsURL, "jobwire-runner", log)
		if err != nil {
			return err
		}
		defer rnc.Close()
		types, err := jobtypes.All(cfg.ExecConfig, getenv)
		if err != nil {
			return err
		}
		r, err := worker.New(ctx, rnc, worker.Config{
			Concurrency: int(cfg.RunnerConcurrency), ShutdownGrace: cfg.ShutdownGrace, AckWait: cfg.AckWait,
			Topology: cfg.Topology(), Logger: log.With("component", "runner"),
		}, types...)
		if err != nil {
			return err
		}
		wg.Go(func() {
			_ = r.Run(ctx)
			_ = rnc.FlushTimeout(2 * time.Second) // delivers the last acks and naks
		})
	}

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return err
	}
	srv := httpapi.NewHTTPServer(cfg.Config, gw.Handler())
	srv.RegisterOnShutdown(gw.Live().CloseAll)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "jobwire is running: http://%s/\n", ln.Addr())
	fmt.Fprintf(stdout, "NATS: %s (try: nats sub 'jobs.*.progress')\n", natsURL)

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return err
	}
	log.Info("shutting down")
	gw.SetReady(false)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	wg.Wait()
	gw.Close()
	if err := nc.Drain(); err != nil {
		log.Warn("nats drain", "err", err)
	}
	return nil
}
