package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/jobwire/jobwire/services/runner/worker"
	"github.com/nats-io/nats.go"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/jobwire/jobwire/internal/devstack"
	"github.com/jobwire/jobwire/internal/envflag"
	"github.com/jobwire/jobwire/internal/metrics"
	"github.com/jobwire/jobwire/internal/natsconn"
	"github.com/jobwire/jobwire/services/gateway/httpapi"
	"github.com/jobwire/jobwire/services/runner/jobtypes"
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
	log := cfg.Logging.Logger(stderr, cfg.Tracing.On())
	traces, err := cfg.Tracing.Start(ctx, log)
	if err != nil {
		return err
	}
	defer traces.Flush(ctx, log) // after everything that makes spans has stopped
	cfg.TracerProvider = traces.TracerProvider()
	stopDebug, err := cfg.Debug.Start(log)
	if err != nil {
		return err
	}
	defer stopDebug()
	reg := metrics.NewRegistry()
	stopMetrics, err := cfg.Metrics.Start(reg, log)
	if err != nil {
		return err
	}
	defer stopMetrics()

	natsURL := cfg.NATSURL
	if cfg.Dev {
		ns, err := devstack.StartNATS(cfg.DevNATSAddr, filepath.Join(cfg.DataDir, "nats"))
		if err != nil {
			return fmt.Errorf("embedded nats server: %w", err)
		}
		defer devstack.StopNATS(ns)
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
	if err := metrics.Register(reg, gw.Metrics(), natsconn.Metrics(nc, "gateway")); err != nil {
		return err
	}

	stopRunner := func() {}
	if cfg.Dev {
		rnc, err := natsconn.Connect(ctx, natsURL, "jobwire-runner", log)
		if err != nil {
			return err
		}
		defer rnc.Close()
		types, err := jobtypes.All(cfg.Runner.ExecConfig, getenv)
		if err != nil {
			return err
		}
		wcfg := cfg.Runner.Worker(log.With("component", "runner"), cfg.Retention)
		wcfg.TracerProvider = cfg.TracerProvider
		var r *worker.Runner
		if r, stopRunner, err = startDevRunner(ctx, rnc, log, wcfg, types); err != nil {
			return err
		}
		defer stopRunner()
		if err := metrics.Register(reg, r.Metrics(), natsconn.Metrics(rnc, "runner")); err != nil {
			return err
		}
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
	stopRunner()
	gw.Close()
	if err := nc.Drain(); err != nil {
		log.Warn("nats drain", "err", err)
	}
	return nil
}

// startDevRunner creates the --dev mode's runner of types on nc, trying
// again while JetStream is not ready (as long as ctx allows), and runs it
// until ctx ends. wait returns once it has stopped and its last acks and
// naks have reached NATS.
func startDevRunner(ctx context.Context, nc *nats.Conn, log *slog.Logger, cfg worker.Config, types []worker.JobType) (r *worker.Runner, wait func(), err error) {
	if err := natsconn.Retry(ctx, log, "start runner", func(ctx context.Context) (err error) {
		r, err = worker.New(ctx, nc, cfg, types...)
		return err
	}); err != nil {
		return nil, nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = r.Run(ctx)
		_ = nc.FlushTimeout(2 * time.Second)
	}()
	return r, func() { <-done }, nil
}
