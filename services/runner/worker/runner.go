// Package worker is jobwire's job runner: it consumes job requests from the
// JOBS stream, runs the registered handler for each, publishes the job's
// events on jobs.<id>.progress, and owns every ack.
package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"go.opentelemetry.io/otel/trace"
)

// Config tunes a runner. The zero value of a field means its default.
type Config struct {
	Concurrency   int           // jobs run at once (default 4)
	AckWait       time.Duration // how long a job may go without a heartbeat (default 30s)
	ShutdownGrace time.Duration // how long running jobs may finish on shutdown (default 10s)
	// ProgressInterval is the shortest time between two progress events
	// of one job (default 100ms: at most 10 per second, the first one an
	// interval after the start; the latest values and the final ones are
	// always stored, the final ones on the event that ends the attempt).
	ProgressInterval time.Duration
	MaxLogLines      int // log lines kept per job attempt (default 1000)
	Topology         jobs.Topology
	// CheckTopology makes New only check the streams and buckets
	// (jobs.Topology.Check), never create or update them: for a NATS
	// user without those rights (jobwire-setup makes them). The runner
	// still creates or updates its consumers (runners_<type>).
	CheckTopology bool
	Logger        *slog.Logger
	// TracerProvider makes a span per delivery of a job (its attempt),
	// under the trace context the job request carries; the events the
	// attempt stores carry the span's. Nil or the no-op provider: no
	// tracing, at the cost of one branch per delivery.
	TracerProvider trace.TracerProvider
}

func (c Config) withDefaults() Config {
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = 10 * time.Second
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = 100 * time.Millisecond
	}
	if c.MaxLogLines <= 0 {
		c.MaxLogLines = 1000
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Runner runs jobs. Make one with New, then call Run.
type Runner struct {
	cfg    Config
	reg    registry
	nc     *nats.Conn
	js     jetstream.JetStream
	events jetstream.Stream
	queues []*queue // the consumers of each type served (one per priority), by name
	log    *slog.Logger
	tracer trace.Tracer // nil: tracing is off
	// spanNames are the attempt spans' names by type (with tracing on).
	spanNames map[string]string

	// fetchWait is how long a waiting fetch waits for a job (see
	// scheduler). A fetch outlives Run's context (see queue.fetch), so this
	// is also how much longer stopping may take.
	fetchWait time.Duration

	mu      sync.Mutex
	running map[string]context.CancelCauseFunc // jobs this runner holds

	metrics *runnerMetrics
}

// New checks the job types (a duplicate is an error), creates the streams
// if they are missing (or, with CheckTopology, checks them), creates the
// consumers of each type (one per priority) if they are missing, and registers the types so
// gateways accept jobs of them.
func New(ctx context.Context, nc *nats.Conn, cfg Config, types ...JobType) (*Runner, error) {
	cfg = cfg.withDefaults()
	reg, err := newRegistry(types)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	open := cfg.Topology.CreateOrUpdate
	if cfg.CheckTopology {
		open = cfg.Topology.Check
	}
	streams, err := open(ctx, js)
	if err != nil {
		return nil, err
	}
	var queues []*queue
	heartbeatFor := cfg.AckWait
	for _, name := range reg.names() {
		for _, p := range jobs.Priorities {
			q := &queue{typ: name, prio: p, ackWait: cfg.AckWait, topo: cfg.Topology, js: js, log: cfg.Logger}
			q.warn.Log = cfg.Logger
			if err := q.bind(ctx); err != nil {
				return nil, err
			}
			// Heartbeats must fit the shortest ack wait of the consumers.
			heartbeatFor = min(heartbeatFor, q.ackWait)
			queues = append(queues, q)
		}
	}
	cfg.AckWait = heartbeatFor
	for _, t := range reg {
		info, err := t.Info()
		if err != nil {
			return nil, err
		}
		b, _ := json.Marshal(info)
		if err := register(ctx, streams.Types, t.Name, b); err != nil {
			return nil, fmt.Errorf("register job type %s: %w", t.Name, err)
		}
	}
	r := &Runner{
		cfg: cfg, reg: reg, nc: nc, js: js, events: streams.Events, queues: queues, log: cfg.Logger, tracer: newTracer(cfg.TracerProvider),
		running:   map[string]context.CancelCauseFunc{},
		fetchWait: 2 * time.Second,
		metrics:   newRunnerMetrics(reg.names(), cfg.Concurrency, js, streams.Events),
	}
	if r.tracer != nil {
		r.spanNames = spanNames(reg)
	}
	return r, nil
}

var errShutdown = errors.New("runner shutting down")

// registerAttempt bounds one write of a job type's registration. A write
// made while the bucket's stream moves to more replicas (JETSTREAM_REPLICAS
// raised) can go unanswered; written again, it lands (a put is
// idempotent).
const registerAttempt = 5 * time.Second

// register stores a job type's registration, trying again after a write
// that went unanswered, as long as ctx allows.
func register(ctx context.Context, kv jetstream.KeyValue, name string, value []byte) error {
	for {
		actx, cancel := context.WithTimeout(ctx, registerAttempt)
		_, err := kv.Put(actx, name, value)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrNoResponders) {
			return err
		}
	}
}

// typeNames lists the job types r serves.
func (r *Runner) typeNames() []string {
	return r.reg.names()
}

// Run fetches and runs jobs until ctx is cancelled. Then it stops
// fetching, lets running jobs finish for the shutdown grace period, and
// hands the rest back to the stream for another runner.
func (r *Runner) Run(ctx context.Context) error {
	cancels, err := r.nc.Subscribe(jobs.AllCancel, r.handleCancel)
	if err != nil {
		return fmt.Errorf("subscribe to cancel requests: %w", err)
	}
	defer func() { _ = cancels.Unsubscribe() }()
	svc, err := micro.AddService(r.nc, micro.Config{
		Name: jobs.RunnerService, Version: "1.0.0", Description: "a jobwire runner",
		Metadata: map[string]string{
			jobs.RunnerTypesKey:       strings.Join(r.typeNames(), ","),
			jobs.RunnerConcurrencyKey: strconv.Itoa(r.cfg.Concurrency),
		},
	})
	if err != nil {
		return fmt.Errorf("announce the runner: %w", err)
	}
	defer func() { _ = svc.Stop() }()
	jobCtx, stopJobs := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stopJobs(errShutdown)
	var jobsRunning sync.WaitGroup
	slots := make(chan struct{}, r.cfg.Concurrency)
	start := func(msg jetstream.Msg) {
		if ctx.Err() != nil {
			// Fetched by a request that outlived ctx (see queue.fetch):
			// straight back to the stream for another runner.
			_ = msg.Nak()
			<-slots
			return
		}
		jobsRunning.Go(func() {
			defer func() { <-slots }()
			r.process(jobCtx, msg)
		})
	}
	newScheduler(r, slots, start).run(ctx)

	done := make(chan struct{})
	go func() { jobsRunning.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(r.cfg.ShutdownGrace):
		r.log.Info("shutdown grace period over, handing running jobs back")
		stopJobs(errShutdown)
		<-done
	}
	return nil
}

// reserveFree takes the free slots, up to most, without waiting.
func reserveFree(slots chan struct{}, most int) int {
	n := 0
	for n < most {
		select {
		case slots <- struct{}{}:
			n++
		default:
			return n
		}
	}
	return n
}

func unreserve(slots chan struct{}, n int) {
	for range n {
		<-slots
	}
}

// holding records that this runner runs job id, so a cancel request can
// reach it. It is false if the job already runs here (a redelivery that
// overtook a slow attempt).
func (r *Runner) holding(id string, cancel context.CancelCauseFunc) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.running[id]; dup {
		return false
	}
	r.running[id] = cancel
	return true
}

func (r *Runner) release(id string) {
	r.mu.Lock()
	delete(r.running, id)
	r.mu.Unlock()
}

// handleCancel answers a cancel request for a job this runner holds by
// cancelling the handler's context; requests for other jobs get no answer.
func (r *Runner) handleCancel(m *nats.Msg) {
	id, ok := jobs.IDFromCancelSubject(m.Subject)
	if !ok {
		return
	}
	r.mu.Lock()
	cancel := r.running[id]
	r.mu.Unlock()
	if cancel == nil {
		return
	}
	var req jobs.CancelRequest
	if err := json.Unmarshal(m.Data, &req); err != nil || req.By == "" {
		req = jobs.CancelRequest{By: "unknown"}
	}
	cancel(&cancelRequested{req: req})
	b, _ := json.Marshal(jobs.CancelReply{Accepted: true})
	_ = m.Respond(b)
}
