package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/jobwire/jobwire/services/runner/worker"
	"github.com/jobwire/jobwire/shared/jobs"
)

// Config is everything the runner can be told; flags default to env vars.
type Config struct {
	NATSURL         string
	Concurrency     int
	AckWait         time.Duration
	ShutdownGrace   time.Duration
	EventsMaxAge    time.Duration
	EventsMaxPerJob int64
}

// Worker is the worker configuration this process configuration asks for.
func (c Config) Worker(log *slog.Logger) worker.Config {
	return worker.Config{
		Concurrency: c.Concurrency, AckWait: c.AckWait, ShutdownGrace: c.ShutdownGrace, Logger: log,
		Topology: jobs.Topology{EventsMaxAge: c.EventsMaxAge, EventsMaxPerJob: c.EventsMaxPerJob},
	}
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	var c Config
	var errs []error
	env := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	envDur := func(key string, def time.Duration) time.Duration {
		v, err := time.ParseDuration(env(key, def.String()))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
		return v
	}
	envInt := func(key string, def int64) int64 {
		v, err := strconv.ParseInt(env(key, strconv.FormatInt(def, 10)), 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: not a number", key))
		}
		return v
	}
	fs := flag.NewFlagSet("runner", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.NATSURL, "nats-url", env("NATS_URL", ""), "NATS server URL(s), comma separated (env NATS_URL, required)")
	concurrency := fs.Int64("concurrency", envInt("RUNNER_CONCURRENCY", 4), "jobs run at once (env RUNNER_CONCURRENCY)")
	fs.DurationVar(&c.AckWait, "ack-wait", envDur("ACK_WAIT", 30*time.Second), "a job silent this long is given to another runner; running jobs heartbeat (env ACK_WAIT)")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", envDur("SHUTDOWN_GRACE", 10*time.Second), "on SIGTERM, how long running jobs may finish before they are handed back (env SHUTDOWN_GRACE)")
	fs.DurationVar(&c.EventsMaxAge, "events-max-age", envDur("EVENTS_MAX_AGE", jobs.DefaultEventsMaxAge), "how long job events are kept (env EVENTS_MAX_AGE)")
	fs.Int64Var(&c.EventsMaxPerJob, "events-max-per-job", envInt("EVENTS_MAX_PER_JOB", jobs.DefaultEventsMaxPerJob), "events kept per job (env EVENTS_MAX_PER_JOB)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.Concurrency = int(*concurrency)
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments: %v", fs.Args()))
	}
	if c.NATSURL == "" {
		errs = append(errs, errors.New("NATS_URL (--nats-url) is required"))
	}
	if c.Concurrency < 1 || c.Concurrency > 10000 {
		errs = append(errs, errors.New("RUNNER_CONCURRENCY must be 1-10000"))
	}
	if c.AckWait < time.Second {
		errs = append(errs, errors.New("ACK_WAIT must be at least 1s"))
	}
	if c.ShutdownGrace < 0 {
		errs = append(errs, errors.New("SHUTDOWN_GRACE must not be negative"))
	}
	return c, errors.Join(errs...)
}
