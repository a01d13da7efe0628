package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
)

// Config is everything the gateway can be told. Each flag's default comes
// from an environment variable; the README lists them all.
type Config struct {
	Dev               bool
	HTTPAddr          string
	NATSURL           string
	DataDir           string
	DevNATSAddr       string
	MaxBodyBytes      int64
	RunnerConcurrency int
	ShutdownGrace     time.Duration
	AckWait           time.Duration
	EventsMaxAge      time.Duration
	EventsMaxPerJob   int64
	AllowedOrigins    []string
}

// Topology is the stream settings this configuration asks for.
func (c Config) Topology() jobs.Topology {
	return jobs.Topology{EventsMaxAge: c.EventsMaxAge, EventsMaxPerJob: c.EventsMaxPerJob}
}

// parseConfig reads flags, with defaults from getenv, and reports every
// problem at once.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	var c Config
	var errs []error
	env := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	envBool := func(key string) bool {
		v, err := strconv.ParseBool(env(key, "false"))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
		return v
	}
	envInt := func(key string, def int64) int64 {
		v, err := strconv.ParseInt(env(key, strconv.FormatInt(def, 10)), 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: not a number", key))
			return def
		}
		return v
	}
	envDur := func(key string, def time.Duration) time.Duration {
		v, err := time.ParseDuration(env(key, def.String()))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
			return def
		}
		return v
	}

	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&c.Dev, "dev", envBool("DEV"), "run everything in one process: embedded NATS server, gateway and runner (env DEV)")
	fs.StringVar(&c.HTTPAddr, "http-addr", env("HTTP_ADDR", "127.0.0.1:8080"), "HTTP listen address (env HTTP_ADDR)")
	fs.StringVar(&c.NATSURL, "nats-url", env("NATS_URL", ""), "NATS server URL(s), comma separated; required without --dev (env NATS_URL)")
	fs.StringVar(&c.DataDir, "data-dir", env("DATA_DIR", "./data"), "--dev: where the embedded NATS server stores JetStream data (env DATA_DIR)")
	fs.StringVar(&c.DevNATSAddr, "nats-addr", env("DEV_NATS_ADDR", "127.0.0.1:4222"), "--dev: listen address of the embedded NATS server (env DEV_NATS_ADDR)")
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", envInt("MAX_BODY_BYTES", 1<<20), "largest accepted request body in bytes (env MAX_BODY_BYTES)")
	concurrency := fs.Int64("runner-concurrency", envInt("RUNNER_CONCURRENCY", 4), "--dev: jobs the in-process runner runs at once (env RUNNER_CONCURRENCY)")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", envDur("SHUTDOWN_GRACE", 10*time.Second), "--dev: on SIGTERM, how long running jobs may finish before they are handed back (env SHUTDOWN_GRACE)")
	fs.DurationVar(&c.AckWait, "ack-wait", envDur("ACK_WAIT", 30*time.Second), "--dev: a job silent this long is given to another runner; running jobs heartbeat (env ACK_WAIT)")
	fs.DurationVar(&c.EventsMaxAge, "events-max-age", envDur("EVENTS_MAX_AGE", jobs.DefaultEventsMaxAge), "how long job events and states are kept (env EVENTS_MAX_AGE)")
	fs.Int64Var(&c.EventsMaxPerJob, "events-max-per-job", envInt("EVENTS_MAX_PER_JOB", jobs.DefaultEventsMaxPerJob), "how many events are kept per job (env EVENTS_MAX_PER_JOB)")
	origins := fs.String("allowed-origins", env("ALLOWED_ORIGINS", ""), "extra origins (host patterns, comma separated) allowed to open WebSockets; same-origin is always allowed (env ALLOWED_ORIGINS)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments: %v", fs.Args()))
	}
	c.RunnerConcurrency = int(*concurrency)
	c.AllowedOrigins = splitList(*origins)

	if !c.Dev && c.NATSURL == "" {
		errs = append(errs, errors.New("NATS_URL (--nats-url) is required unless --dev is given"))
	}
	if c.Dev && c.NATSURL != "" {
		errs = append(errs, errors.New("--dev runs its own NATS server: unset NATS_URL (--nats-url) or drop --dev"))
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("HTTP_ADDR %q: %w", c.HTTPAddr, err))
	}
	if _, _, err := net.SplitHostPort(c.DevNATSAddr); c.Dev && err != nil {
		errs = append(errs, fmt.Errorf("DEV_NATS_ADDR %q: %w", c.DevNATSAddr, err))
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, errors.New("MAX_BODY_BYTES must be at least 1024"))
	}
	if c.RunnerConcurrency < 1 || c.RunnerConcurrency > 10000 {
		errs = append(errs, errors.New("RUNNER_CONCURRENCY must be 1-10000"))
	}
	if c.AckWait < time.Second {
		errs = append(errs, errors.New("ACK_WAIT must be at least 1s"))
	}
	if c.EventsMaxAge < time.Minute {
		errs = append(errs, errors.New("EVENTS_MAX_AGE must be at least 1m"))
	}
	if c.EventsMaxPerJob < 10 {
		errs = append(errs, errors.New("EVENTS_MAX_PER_JOB must be at least 10"))
	}
	return c, errors.Join(errs...)
}

func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}
