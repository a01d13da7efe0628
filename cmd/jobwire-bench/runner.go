package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// noopInput is the input of a demo job that does nothing: one step, no sleep.
var noopInput = json.RawMessage(`{"steps":1,"step_ms":0}`)

// runnerResult compares jobs run end to end (enqueued with jobs.Enqueue
// until their final event is stored) with fetch + ack of as many messages
// on a work-queue stream.
type runnerResult struct {
	Jobs              int     `json:"jobs"`
	RunnerConcurrency int     `json:"runner_concurrency"`
	EnqueueWorkers    int     `json:"enqueue_workers"`
	Succeeded         int64   `json:"succeeded"`
	Failed            int64   `json:"failed"`
	EnqueueErrors     int64   `json:"enqueue_errors"`
	FirstError        string  `json:"first_error,omitempty"`
	EnqueueSeconds    float64 `json:"enqueue_seconds"`
	EnqueuePerSec     float64 `json:"enqueue_per_sec"`
	Seconds           float64 `json:"seconds"` // first enqueue → last final event
	JobsPerSec        float64 `json:"jobs_per_sec"`
	CPU               cpuUse  `json:"cpu"`

	RawMsgs          int     `json:"raw_msgs"`
	RawPayloadBytes  int     `json:"raw_payload_bytes"`
	RawBatch         int     `json:"raw_fetch_batch"`
	RawPublishPerSec float64 `json:"raw_prepublish_per_sec"`
	RawAcked         int     `json:"raw_acked"`
	RawSeconds       float64 `json:"raw_seconds"`
	RawPerSec        float64 `json:"raw_per_sec"`
	RawCPU           cpuUse  `json:"raw_cpu"`
}

func measureRunner(ctx context.Context, cfg config, sys *system, prof *profiler, logf func(string, ...any)) (*runnerResult, error) {
	res := &runnerResult{Jobs: cfg.Jobs, RunnerConcurrency: cfg.RunnerConcurrency, EnqueueWorkers: cfg.EnqueueWorkers, RawBatch: cfg.FetchBatch}
	logf("runner: raw fetch+ack of %d messages, batch %d", cfg.Jobs, cfg.FetchBatch)
	if err := fetchAck(ctx, cfg, sys, res); err != nil {
		return res, err
	}
	logf("runner: %d no-op jobs, jobs.Enqueue → final event", cfg.Jobs)
	stopProfile := prof.start("runner")
	run, err := runJobs(ctx, sys, cfg.Jobs, cfg.EnqueueWorkers, noopInput, cfg.PhaseTimeout)
	stopProfile()
	if run != nil {
		res.Succeeded, res.Failed = run.succeeded, run.failed
		res.EnqueueErrors, res.FirstError = run.enqueueErrors, run.firstError
		res.EnqueueSeconds = run.enqueued.Sub(run.start).Seconds()
		res.EnqueuePerSec = float64(cfg.Jobs) / res.EnqueueSeconds
		res.Seconds = run.last.Sub(run.start).Seconds()
		res.JobsPerSec = float64(run.succeeded+run.failed) / res.Seconds
		res.CPU = run.cpu
	}
	return res, err
}

// jobRun is what runJobs saw.
type jobRun struct {
	ids                   []string // jobs that succeeded
	succeeded, failed     int64
	enqueueErrors         int64
	firstError            string
	start, enqueued, last time.Time
	cpu                   cpuUse
}

// runJobs enqueues n demo jobs straight on NATS with jobs.Enqueue from
// workers goroutines, as fast as they go, and waits until every job's
// final event has been published on jobs.<id>.progress.
func runJobs(ctx context.Context, sys *system, n, workers int, input json.RawMessage, limit time.Duration) (*jobRun, error) {
	subConn, err := connect(sys.NATSURL, "jobwire-bench-events", nil)
	if err != nil {
		return nil, err
	}
	defer subConn.Close()
	pubConn, js, err := connectJS(sys.NATSURL, "jobwire-bench-enqueue")
	if err != nil {
		return nil, err
	}
	defer pubConn.Close()

	now := time.Now()
	ids := make([]string, n)
	index := make(map[string]int, n)
	for i := range ids {
		ids[i] = jobs.NewID(now)
		index[ids[i]] = i
	}
	var (
		mu                sync.Mutex
		seen              = make([]bool, n)
		ok                = make([]bool, n)
		succeeded, failed atomic.Int64
		lastNano          atomic.Int64
		failure           errorTally
	)
	sub, err := subConn.Subscribe(jobs.AllProgress, func(m *nats.Msg) {
		id, valid := jobs.IDFromProgressSubject(m.Subject)
		i, mine := index[id]
		if !valid || !mine {
			return
		}
		st := eventStatus(m.Data)
		if !terminalStatus(st) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if seen[i] {
			return
		}
		seen[i] = true
		lastNano.Store(time.Now().UnixNano())
		if st == "succeeded" {
			ok[i] = true
			succeeded.Add(1)
			return
		}
		failed.Add(1)
		failure.add(fmt.Errorf("job %s ended %s: %s", id, st, m.Data))
	})
	if err != nil {
		return nil, err
	}
	_ = sub.SetPendingLimits(1<<20, 1<<30)
	if err := subConn.Flush(); err != nil {
		return nil, err
	}

	run := &jobRun{start: time.Now()}
	meter := startCPU(sys.PID)
	var enqErrs errorTally
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := jobs.Enqueue(ectx, js, jobs.Request{ID: ids[i], Type: "demo", Input: input, CreatedAt: time.Now(), Owner: "user:bench"})
				cancel()
				if err != nil {
					enqErrs.add(err)
				}
			}
		})
	}
	enqueued := make(chan struct{})
	go func() { wg.Wait(); run.enqueued = time.Now(); close(enqueued) }()

	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var waitErr error
	enqueueDone := false
wait:
	for {
		select {
		case <-enqueued:
			enqueueDone, enqueued = true, nil
		case <-tick.C:
			if enqueueDone && succeeded.Load()+failed.Load() >= int64(n)-enqErrs.n.Load() {
				break wait
			}
		case <-deadline.C:
			waitErr = fmt.Errorf("runner: %d of %d jobs ended after %v", succeeded.Load()+failed.Load(), n, limit)
			break wait
		case <-ctx.Done():
			waitErr = ctx.Err()
			break wait
		}
	}
	run.cpu = meter.stop()
	wg.Wait()
	<-enqueuedOrNil(enqueued)
	_ = sub.Unsubscribe()
	mu.Lock()
	defer mu.Unlock()
	run.succeeded, run.failed = succeeded.Load(), failed.Load()
	run.enqueueErrors, run.firstError = enqErrs.n.Load(), enqErrs.first
	if run.firstError == "" {
		run.firstError = failure.first
	}
	run.last = time.Unix(0, lastNano.Load())
	if lastNano.Load() == 0 {
		run.last = time.Now()
	}
	for i, good := range ok {
		if good {
			run.ids = append(run.ids, ids[i])
		}
	}
	switch {
	case waitErr != nil:
		return run, waitErr
	case run.enqueueErrors > 0:
		return run, fmt.Errorf("runner: %d of %d enqueues failed, first: %s", run.enqueueErrors, n, enqErrs.first)
	case run.failed > 0:
		return run, fmt.Errorf("runner: %d of %d jobs did not succeed, first: %s", run.failed, n, failure.first)
	}
	return run, nil
}

func enqueuedOrNil(ch chan struct{}) chan struct{} {
	if ch == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return ch
}

// fetchAck is the runner's baseline: N messages of a job request's size,
// published beforehand to a scratch work-queue stream, then fetched in
// batches by one pull consumer and acked one by one (msg.Ack, as the
// runner does with its jobs, though it waits for the ack's confirmation).
func fetchAck(ctx context.Context, cfg config, sys *system, res *runnerResult) error {
	nc, err := connect(sys.NATSURL, "jobwire-bench-fetch", nil)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return err
	}
	stream, drop, err := scratchStream(ctx, js, jetstream.StreamConfig{
		Name: "BENCH_WQ", Subjects: []string{"bench.wq"}, Storage: jetstream.FileStorage, Retention: jetstream.WorkQueuePolicy,
	})
	if err != nil {
		return err
	}
	defer drop()
	payload, _ := json.Marshal(jobs.Request{ID: jobs.NewID(time.Now()), Type: "demo", Input: noopInput, CreatedAt: time.Now(), Owner: "user:bench"})
	res.RawMsgs, res.RawPayloadBytes = cfg.Jobs, len(payload)

	start := time.Now()
	for i := 0; i < cfg.Jobs; i++ {
		for attempt := 0; ; attempt++ {
			_, err := js.PublishAsync("bench.wq", payload)
			if err == nil {
				break
			}
			if attempt >= 50 || ctx.Err() != nil {
				return fmt.Errorf("runner baseline: publish: %w", err)
			}
			sleepCtx(ctx, 10*time.Millisecond)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(cfg.PhaseTimeout):
		return errors.New("runner baseline: publishes not acknowledged in time")
	case <-ctx.Done():
		return ctx.Err()
	}
	res.RawPublishPerSec = float64(cfg.Jobs) / time.Since(start).Seconds()
	info, err := stream.Info(ctx)
	if err != nil {
		return err
	}
	if info.State.Msgs != uint64(cfg.Jobs) {
		return fmt.Errorf("runner baseline: %d messages stored, want %d", info.State.Msgs, cfg.Jobs)
	}
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: "bench", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 10_000, AckWait: time.Minute,
	})
	if err != nil {
		return err
	}

	meter := startCPU(sys.PID)
	start = time.Now()
	got := 0
	var firstErr error
	for got < cfg.Jobs && time.Since(start) < cfg.PhaseTimeout && ctx.Err() == nil {
		batch, err := cons.Fetch(min(cfg.FetchBatch, cfg.Jobs-got), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			firstErr = cmpOr(firstErr, err)
			continue
		}
		for m := range batch.Messages() {
			if err := m.Ack(); err != nil {
				firstErr = cmpOr(firstErr, err)
				continue
			}
			got++
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			firstErr = cmpOr(firstErr, err)
		}
	}
	if err := nc.Flush(); err != nil {
		firstErr = cmpOr(firstErr, err)
	}
	res.RawSeconds = time.Since(start).Seconds()
	res.RawCPU = meter.stop()
	res.RawAcked = got
	res.RawPerSec = float64(got) / res.RawSeconds
	if got < cfg.Jobs {
		return fmt.Errorf("runner baseline: acked %d of %d messages (first error: %v)", got, cfg.Jobs, firstErr)
	}
	return nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
