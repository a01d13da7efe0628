// Command runner runs jobwire jobs: it consumes job requests from NATS
// JetStream and publishes their progress.
package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/jobwire/jobwire/internal/cli"
	"io"
	"sync/atomic"

	"github.com/jobwire/jobwire/internal/envflag"
	"github.com/jobwire/jobwire/internal/metrics"
	"github.com/jobwire/jobwire/internal/natsconn"
	"github.com/jobwire/jobwire/services/runner/jobtypes"
	"github.com/jobwire/jobwire/services/runner/worker"
	"github.com/nats-io/nats.go"
)

func main() { cli.Main("runner", run) }

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
	defer traces.Flush(ctx, log) // after the runner has stopped: its last attempts' spans
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
	natsOpts, err := cfg.NATS.Options()
	if err != nil {
		return err
	}
	var nc atomic.Pointer[nats.Conn]
	var bound atomic.Bool // consumers bound: worker.New has returned
	if cfg.HealthAddr != "" {
		addr, stopHealth, err := startHealth(cfg.HealthAddr, func() error {
			switch c := nc.Load(); {
			case c == nil || !c.IsConnected():
				return errors.New("not connected to NATS")
			case !bound.Load():
				return errors.New("starting: consumers not bound yet")
			}
			return nil
		}, log)
		if err != nil {
			return fmt.Errorf("health server: %w", err)
		}
		defer stopHealth()
		fmt.Fprintf(stdout, "jobwire runner: health checks on http://%s/readyz\n", addr)
	}
	conn, err := natsconn.Connect(ctx, cfg.NATSURL, "jobwire-runner", log, natsOpts...)
	if err != nil {
		return err
	}
	defer conn.Close()
	nc.Store(conn)
	if err := metrics.Register(reg, natsconn.Metrics(conn, "runner")); err != nil {
		return err
	}
	types, err := jobtypes.All(cfg.ExecConfig, getenv)
	if err != nil {
		return err
	}
	if types, err = jobtypes.Select(types, cfg.JobTypes); err != nil {
		return err
	}
	wcfg := cfg.Runner.Worker(log, cfg.Retention)
	wcfg.CheckTopology = cfg.TopologyMode.CheckOnly() // the consumers it creates either way
	wcfg.TracerProvider = traces.TracerProvider()
	var r *worker.Runner
	if err := natsconn.Retry(ctx, log, "start runner", func(ctx context.Context) (err error) {
		r, err = worker.New(ctx, conn, wcfg, types...)
		return err
	}); err != nil {
		return err
	}
	bound.Store(true)
	if err := metrics.Register(reg, r.Metrics()); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "jobwire runner: running up to %d jobs at once from %s\n", cfg.Concurrency, conn.ConnectedUrlRedacted())
	if err := r.Run(ctx); err != nil {
		return err
	}
	bound.Store(false)
	return conn.Drain()
}
