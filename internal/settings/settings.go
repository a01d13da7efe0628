// Package settings defines, once, the settings that several commands take:
// the streams' retention (the gateway, the runner and jobwire-setup create
// or check the topology, so they must agree on it), whether a service
// creates the topology or only checks it, and the runner's own settings
// (for the runner, and for the gateway's --dev runner).
package settings

import (
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/jobwire/jobwire/internal/debugserver"
	"github.com/jobwire/jobwire/internal/envflag"
	"github.com/jobwire/jobwire/internal/metrics"
	"github.com/jobwire/jobwire/services/runner/worker"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/prometheus/client_golang/prometheus"
)

// Retention is how long, how much and on how many NATS nodes a job's
// history is kept.
type Retention struct {
	// Replicas is how many copies of every stream, bucket and durable
	// consumer a NATS cluster keeps (JETSTREAM_REPLICAS: 1, 3 or 5).
	Replicas        int64
	EventsMaxAge    time.Duration
	EventsMaxPerJob int64
	// TombstoneTTL is how long an ended job is remembered after its events
	// have aged out (it then answers 410, not 404).
	TombstoneTTL time.Duration
}

// Register defines JETSTREAM_REPLICAS, EVENTS_MAX_AGE, EVENTS_MAX_PER_JOB
// and TOMBSTONE_TTL.
func (r *Retention) Register(s *envflag.Set) {
	s.Int(&r.Replicas, "jetstream-replicas", "JETSTREAM_REPLICAS", 1, "copies of every stream, bucket and consumer on a NATS cluster (1, 3 or 5); an existing deployment converges to it at start-up")
	s.Duration(&r.EventsMaxAge, "events-max-age", "EVENTS_MAX_AGE", jobs.DefaultEventsMaxAge, "how long job events and states are kept")
	s.Int(&r.EventsMaxPerJob, "events-max-per-job", "EVENTS_MAX_PER_JOB", jobs.DefaultEventsMaxPerJob, "how many events are kept per job")
	s.Duration(&r.TombstoneTTL, "tombstone-ttl", "TOMBSTONE_TTL", jobs.DefaultTombstoneTTL, "how long an ended job is remembered after its events expire (it then answers 410, not 404)")
}

// Check records what is wrong with r in s.
func (r Retention) Check(s *envflag.Set) {
	s.Check(r.Replicas == 1 || r.Replicas == 3 || r.Replicas == 5, "JETSTREAM_REPLICAS must be 1, 3 or 5")
	s.Check(r.EventsMaxAge >= time.Minute, "EVENTS_MAX_AGE must be at least 1m")
	s.Check(r.EventsMaxPerJob >= 10, "EVENTS_MAX_PER_JOB must be at least 10")
	s.Check(r.TombstoneTTL >= 0, "TOMBSTONE_TTL must not be negative")
}

// Topology is the stream settings r asks for.
func (r Retention) Topology() jobs.Topology {
	return jobs.Topology{Replicas: int(r.Replicas), EventsMaxAge: r.EventsMaxAge, EventsMaxPerJob: r.EventsMaxPerJob, TombstoneTTL: r.TombstoneTTL}
}

// TopologyMode is what a service does with the streams and buckets at
// start-up (TOPOLOGY).
type TopologyMode string

const (
	// TopologyCreate creates or updates them (jobs.Topology.CreateOrUpdate):
	// the service's NATS user needs the rights to. The default, and --dev.
	TopologyCreate TopologyMode = "create"
	// TopologyCheck only checks that they exist and match
	// (jobs.Topology.Check), waiting while they do not: jobwire-setup
	// makes them with admin rights. A runner still creates its consumers.
	TopologyCheck TopologyMode = "check"
)

// Register defines TOPOLOGY.
func (m *TopologyMode) Register(s *envflag.Set) {
	s.String((*string)(m), "topology", "TOPOLOGY", string(TopologyCreate),
		"create: create or update the streams and buckets at start-up; check: only check that they exist and match (jobwire-setup makes them), waiting while they do not")
}

// Check records what is wrong with m in s.
func (m TopologyMode) Check(s *envflag.Set) {
	s.Check(m == TopologyCreate || m == TopologyCheck, fmt.Sprintf("TOPOLOGY must be create or check, not %q", string(m)))
}

// CheckOnly reports whether the service may only check the topology.
func (m TopologyMode) CheckOnly() bool { return m == TopologyCheck }

// Runner is how a runner runs jobs.
type Runner struct {
	Concurrency   int64
	AckWait       time.Duration
	ShutdownGrace time.Duration
	ExecConfig    string // file of commands that run as job types
}

// Register defines RUNNER_CONCURRENCY (as the flag concurrencyFlag),
// ACK_WAIT, SHUTDOWN_GRACE and EXEC_CONFIG; scope starts each flag's help
// ("--dev: " in the gateway).
func (r *Runner) Register(s *envflag.Set, concurrencyFlag, scope string) {
	s.Int(&r.Concurrency, concurrencyFlag, "RUNNER_CONCURRENCY", 4, scope+"jobs the runner runs at once")
	s.Duration(&r.AckWait, "ack-wait", "ACK_WAIT", 30*time.Second, scope+"a job whose runner is silent this long goes to another runner; running jobs heartbeat")
	s.Duration(&r.ShutdownGrace, "shutdown-grace", "SHUTDOWN_GRACE", 10*time.Second, scope+"on SIGTERM, how long running jobs may finish before they are handed back")
	s.String(&r.ExecConfig, "exec-config", "EXEC_CONFIG", "", scope+"JSON file of commands that run as job types (see examples/exec)")
}

// Check records what is wrong with r in s.
func (r Runner) Check(s *envflag.Set) {
	s.Check(r.Concurrency >= 1 && r.Concurrency <= 10000, "RUNNER_CONCURRENCY must be 1-10000")
	s.Check(r.AckWait >= time.Second, "ACK_WAIT must be at least 1s")
	s.Check(r.ShutdownGrace >= 0, "SHUTDOWN_GRACE must not be negative")
}

// Worker is the runner configuration r asks for, on streams kept as ret says.
func (r Runner) Worker(log *slog.Logger, ret Retention) worker.Config {
	return worker.Config{
		Concurrency: int(r.Concurrency), AckWait: r.AckWait, ShutdownGrace: r.ShutdownGrace,
		Topology: ret.Topology(), Logger: log,
	}
}

// Debug is where Go's profiles are served (internal/debugserver).
type Debug struct {
	Addr string // empty: off
}

// Register defines DEBUG_ADDR.
func (d *Debug) Register(s *envflag.Set) {
	s.String(&d.Addr, "debug-addr", "DEBUG_ADDR", "", "listen address of Go's profiles (/debug/pprof/); off when empty; never expose it publicly")
}

// Check records what is wrong with d in s.
func (d Debug) Check(s *envflag.Set) { checkAddr(s, "DEBUG_ADDR", d.Addr) }

// Start serves the profiles when an address is set; stop ends that.
func (d Debug) Start(log *slog.Logger) (stop func(), err error) {
	return startIfSet(d.Addr, "debug server", func() (net.Addr, func(), error) { return debugserver.Start(d.Addr, log) })
}

// Metrics is where Prometheus metrics are served (internal/metrics).
type Metrics struct {
	Addr string // empty: off
}

// Register defines METRICS_ADDR.
func (m *Metrics) Register(s *envflag.Set) {
	s.String(&m.Addr, "metrics-addr", "METRICS_ADDR", "", "listen address of the Prometheus metrics (/metrics), e.g. 127.0.0.1:9464; off when empty (the images set 0.0.0.0:9464)")
}

// Check records what is wrong with m in s.
func (m Metrics) Check(s *envflag.Set) { checkAddr(s, "METRICS_ADDR", m.Addr) }

// Start serves reg's metrics when an address is set; stop ends that.
func (m Metrics) Start(reg *prometheus.Registry, log *slog.Logger) (stop func(), err error) {
	return startIfSet(m.Addr, "metrics server", func() (net.Addr, func(), error) { return metrics.Start(m.Addr, reg, log) })
}

// checkAddr records in s that the listen address addr of setting env is
// set but not host:port.
func checkAddr(s *envflag.Set, env, addr string) {
	if _, _, err := net.SplitHostPort(addr); addr != "" && err != nil {
		s.Errorf("%s %q: %v", env, addr, err)
	}
}

// startIfSet runs start (a listener of its own, what) when addr is set;
// stop ends what it started.
func startIfSet(addr, what string, start func() (net.Addr, func(), error)) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	_, stop, err = start()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return stop, nil
}
