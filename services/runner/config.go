package main

import (
	"github.com/jobwire/jobwire/internal/settings"
	"io"
	"net"
	"strings"

	"github.com/jobwire/jobwire/internal/envflag"
	"github.com/jobwire/jobwire/internal/natsconn"
)

// Config is everything the runner can be told; flags default to env vars.
type Config struct {
	settings.Runner
	settings.Retention
	TopologyMode settings.TopologyMode // create or only check the streams
	NATSURL      string
	JobTypes     []string         // serve only these types (empty: all)
	Debug        settings.Debug   // where /debug/pprof/ listens
	Metrics      settings.Metrics // where /metrics listens
	Logging      settings.Logging
	Tracing      settings.Tracing // the OTEL_* variables
	// HealthAddr is where /healthz and /readyz answer (empty: off).
	HealthAddr string
	NATS       natsconn.Auth
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	var c Config
	s := envflag.New("runner", getenv, stderr)
	s.String(&c.NATSURL, "nats-url", "NATS_URL", "", "NATS server URL(s), comma separated (required)")
	c.Runner.Register(s, "concurrency", "")
	c.Retention.Register(s)
	c.TopologyMode.Register(s)
	var types string
	s.String(&types, "job-types", "JOB_TYPES", "", "serve only these job types, comma separated (default: all this runner knows)")
	c.Debug.Register(s)
	c.Metrics.Register(s)
	c.Logging.Register(s)
	c.Tracing.Register(s, "jobwire-runner")
	s.String(&c.HealthAddr, "health-addr", "HEALTH_ADDR", "", "listen address of the probes /healthz (alive) and /readyz (connected to NATS, consumers bound); off when empty")
	c.NATS.RegisterFlags(s)
	if err := s.Parse(args); err != nil {
		return c, err
	}
	c.JobTypes = strings.FieldsFunc(types, func(r rune) bool { return r == ',' || r == ' ' })
	if err := c.NATS.Validate(); err != nil {
		s.Errorf("%v", err)
	}
	s.Check(c.NATSURL != "", "NATS_URL (--nats-url) is required")
	c.Debug.Check(s)
	c.Metrics.Check(s)
	c.Logging.Check(s)
	c.Tracing.Check(s)
	if _, _, err := net.SplitHostPort(c.HealthAddr); c.HealthAddr != "" && err != nil {
		s.Errorf("HEALTH_ADDR %q: %v", c.HealthAddr, err)
	}
	c.Runner.Check(s)
	c.Retention.Check(s)
	c.TopologyMode.Check(s)
	return c, s.Err()
}
