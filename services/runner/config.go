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
	NATSURL   string
	JobTypes  []string // serve only these types (empty: all)
	DebugAddr string   // where /debug/pprof/ listens (empty: off)
	NATS      natsconn.Auth
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	var c Config
	s := envflag.New("runner", getenv, stderr)
	s.String(&c.NATSURL, "nats-url", "NATS_URL", "", "NATS server URL(s), comma separated (required)")
	c.Runner.Register(s, "concurrency", "")
	c.Retention.Register(s)
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
	c.Runner.Check(s)
	c.Retention.Check(s)
	return c, s.Err()
}
