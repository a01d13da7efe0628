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
	"strings"
	"sync"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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
	Logger           *slog.Logger
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
	cons   jetstream.Consumer
	log    *slog.Logger

	mu      sync.Mutex
	running map[string]context.CancelCauseFunc // jobs this runner holds
}

// New checks the job types (a duplicate is an error), creates the streams
// and the shared consumer if they are missing, and registers the types so
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
	streams, err := cfg.Topology.CreateOrUpdate(ctx, js)
	if err != nil {
		return nil, err
	}
	names := reg.names()
	subjects := make([]string, len(names))
	for i, n := range names {
		subjects[i] = jobs.QueueSubject(n)
	}
	consumer := jobs.ConsumerName(names)
	if existing, err := js.Consumer(ctx, jobs.QueueStream, consumer); err == nil {
		// The pool's ack wait is the one its consumer has: heartbeat for
		// that, so a runner that joins with another setting can never get
		// the running jobs of the others redelivered.
		if aw := existing.CachedInfo().Config.AckWait; aw > 0 && aw != cfg.AckWait {
			cfg.Logger.Warn("keeping the pool's ack wait", "consumer", consumer, "pool", aw, "configured", cfg.AckWait)
			cfg.AckWait = aw
		}
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, jobs.QueueStream, jetstream.ConsumerConfig{
		Durable:        consumer,
		Description:    "jobwire runners for " + strings.Join(names, ", "),
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        cfg.AckWait,
		FilterSubjects: subjects,
		MaxAckPending:  10_000,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w (a job type is served by one set of runners: "+
			"every runner that serves a type must serve the same types; remove consumers of old pools with `nats consumer rm %s <name>`)",
			consumer, err, jobs.QueueStream)
	}
	for _, t := range reg {
		info, err := t.Info()
		if err != nil {
			return nil, err
		}
		b, _ := json.Marshal(info)
		if _, err := streams.Types.Put(ctx, t.Name, b); err != nil {
			return nil, fmt.Errorf("register job type %s: %w", t.Name, err)
		}
	}
	return &Runner{
		cfg: cfg, reg: reg, nc: nc, js: js, events: streams.Events, cons: cons, log: cfg.Logger,
		running: map[string]context.CancelCauseFunc{},
	}, nil
}

var errShutdown = errors.New("runner shutting down")

// Run fetches and runs jobs until ctx is cancelled. Then it stops
// fetching, lets running jobs finish for the shutdown grace period, and
// hands the rest back to the stream for another runner.
func (r *Runner) Run(ctx context.Context) error {
	cancels, err := r.nc.Subscribe(jobs.AllCancel, r.handleCancel)
	if err != nil {
		return fmt.Errorf("subscribe to cancel requests: %w", err)
	}
	defer func() { _ = cancels.Unsubscribe() }()
	jobCtx, stopJobs := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stopJobs(errShutdown)
	var wg sync.WaitGroup
	slots := make(chan struct{}, r.cfg.Concurrency)

	for ctx.Err() == nil {
		n, ok := reserve(ctx, slots)
		if !ok {
			break
		}
		got := r.fetch(ctx, n, func(msg jetstream.Msg) {
			wg.Go(func() {
				defer func() { <-slots }()
				r.process(jobCtx, msg)
			})
		})
		for range n - got {
			<-slots
		}
	}

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(r.cfg.ShutdownGrace):
		r.log.Info("shutdown grace period over, handing running jobs back")
		stopJobs(errShutdown)
		<-done
	}
	return nil
}

// reserve blocks until at least one slot is free, then takes every free slot.
func reserve(ctx context.Context, slots chan struct{}) (int, bool) {
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return 0, false
	}
	n := 1
	for n < cap(slots) {
		select {
		case slots <- struct{}{}:
			n++
		default:
			return n, true
		}
	}
	return n, true
}

// fetch pulls up to n messages, waiting a few seconds at most, and hands
// each to start as it arrives. It returns how many arrived.
func (r *Runner) fetch(ctx context.Context, n int, start func(jetstream.Msg)) int {
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	batch, err := r.cons.Fetch(n, jetstream.FetchContext(fctx))
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("fetch failed", "err", err)
			sleep(ctx, time.Second)
		}
		return 0
	}
	got := 0
	for msg := range batch.Messages() {
		got++
		start(msg)
	}
	if err := batch.Error(); err != nil && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
		r.log.Warn("fetch ended with an error", "err", err)
	}
	return got
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
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
