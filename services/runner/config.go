package main

import (
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/jobwire/jobwire/internal/envflag"
	"github.com/jobwire/jobwire/internal/natsconn"
	"github.com/jobwire/jobwire/services/runner/worker"
	"github.com/jobwire/jobwire/shared/jobs"
)

// Config is everything the runner can be told; flags default to env vars.
type Config struct {
	NATSURL         string
	Concurrency     int64
	AckWait         time.Duration
	ShutdownGrace   time.Duration
	EventsMaxAge    time.Duration
	EventsMaxPerJob int64
	TombstoneTTL    time.Duration
	JobTypes        []string // serve only these types (empty: all)
	ExecConfig      string   // file of commands that run as jobs
	DebugAddr       string   // where /debug/pprof/ listens (empty: off)
	NATS            natsconn.Auth
}

// Worker is the worker configuration this process configuration asks for.
func (c Config) Worker(log *slog.Logger) worker.Config {
	return worker.Config{
		Concurrency: int(c.Concurrency), AckWait: c.AckWait, ShutdownGrace: c.ShutdownGrace, Logger: log,
		Topology: jobs.Topology{EventsMaxAge: c.EventsMaxAge, EventsMaxPerJob: c.EventsMaxPerJob, TombstoneTTL: c.TombstoneTTL},
	}
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	var c Config
	s := envflag.New("runner", getenv, stderr)
	s.String(&c.NATSURL, "nats-url", "NATS_URL", "", "NATS server URL(s), comma separated (required)")
	s.Int(&c.Concurrency, "concurrency", "RUNNER_CONCURRENCY", 4, "jobs run at once")
	s.Duration(&c.AckWait, "ack-wait", "ACK_WAIT", 30*time.Second, "a job whose runner is silent this long goes to another runner; running jobs heartbeat")
	s.Duration(&c.ShutdownGrace, "shutdown-grace", "SHUTDOWN_GRACE", 10*time.Second, "on SIGTERM, how long running jobs may finish before they are handed back")
	s.Duration(&c.EventsMaxAge, "events-max-age", "EVENTS_MAX_AGE", jobs.DefaultEventsMaxAge, "how long job events are kept")
	s.Int(&c.EventsMaxPerJob, "events-max-per-job", "EVENTS_MAX_PER_JOB", jobs.DefaultEventsMaxPerJob, "events kept per job")
	s.Duration(&c.TombstoneTTL, "tombstone-ttl", "TOMBSTONE_TTL", jobs.DefaultTombstoneTTL, "how long an ended job is remembered after its events expire (it then answers 410, not 404)")
	s.String(&c.ExecConfig, "exec-config", "EXEC_CONFIG", "", "JSON file of commands that run as job types (see examples/exec)")
	var types string
	s.String(&types, "job-types", "JOB_TYPES", "", "serve only these job types, comma separated (default: all this runner knows)")
	s.String(&c.DebugAddr, "debug-addr", "DEBUG_ADDR", "", "listen address of Go's profiles (/debug/pprof/); off when empty; never expose it publicly")
	c.NATS.RegisterFlags(s)
	if err := s.Parse(args); err != nil {
		return c, err
	}
	c.JobTypes = strings.FieldsFunc(types, func(r rune) bool { return r == ',' || r == ' ' })
	if err := c.NATS.Validate(); err != nil {
		s.Errorf("%v", err)
	}
	s.Check(c.NATSURL != "", "NATS_URL (--nats-url) is required")
	if _, _, err := net.SplitHostPort(c.DebugAddr); c.DebugAddr != "" && err != nil {
		s.Errorf("DEBUG_ADDR %q: %v", c.DebugAddr, err)
	}
	s.Check(c.Concurrency >= 1 && c.Concurrency <= 10000, "RUNNER_CONCURRENCY must be 1-10000")
	s.Check(c.AckWait >= time.Second, "ACK_WAIT must be at least 1s")
	s.Check(c.ShutdownGrace >= 0, "SHUTDOWN_GRACE must not be negative")
	return c, s.Err()
}
