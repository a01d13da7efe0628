package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// submitBody is what every submission posts: the smallest demo job.
const submitBody = `{"type":"demo","input":{"steps":1,"step_ms":0}}`

// submitResult compares POST /api/jobs with a JetStream synchronous
// publish of a payload of the same size, closed loop and open loop.
type submitResult struct {
	BodyBytes   int        `json:"body_bytes"`
	Concurrency int        `json:"concurrency"`
	Jobwire     loadResult `json:"jobwire_closed_loop"`
	Raw         loadResult `json:"raw_closed_loop"`
	JobwireCPU  cpuUse     `json:"jobwire_closed_loop_cpu"`
	RawCPU      cpuUse     `json:"raw_closed_loop_cpu"`
	Rate        float64    `json:"open_loop_rate"`
	JobwireOpen loadResult `json:"jobwire_open_loop"`
	RawOpen     loadResult `json:"raw_open_loop"`
	DrainedS    []float64  `json:"queue_drain_seconds"`
	// The same submissions of a job type that no runner serves (registered
	// by the tool, purged afterwards): the submit path without the
	// runner's work competing for the machine.
	ParkedType      string     `json:"parked_type"`
	ParkedBodyBytes int        `json:"parked_body_bytes"`
	Parked          loadResult `json:"parked_closed_loop"`
	ParkedCPU       cpuUse     `json:"parked_closed_loop_cpu"`
	ParkedOpen      loadResult `json:"parked_open_loop"`
	// jobs.Enqueue (what jobclient.Submit stores) from Concurrency
	// goroutines on the tool's own connection, of the parked type: the Go
	// library's submit against the raw sync publish above.
	GoSubmit    loadResult `json:"go_submit_closed_loop"`
	GoSubmitCPU cpuUse     `json:"go_submit_closed_loop_cpu"`
	// Batches of BatchSize parked jobs (jobs.EnqueueMany, what
	// jobclient.SubmitMany and POST /api/jobs:batch store) from
	// BatchWorkers goroutines, against raw JetStream async publishes of
	// as many messages of the request's size, awaited per batch.
	BatchSize    int        `json:"batch_size"`
	BatchWorkers int        `json:"batch_workers"`
	Batch        loadResult `json:"batch_closed_loop"`
	RawAsync     loadResult `json:"raw_async_closed_loop"`
	BatchJobsS   float64    `json:"batch_jobs_per_sec"`
	RawAsyncMsgS float64    `json:"raw_async_msgs_per_sec"`
}

// parkedType is registered by the tool for the runner-idle submissions.
const parkedType = "bench_parked"

// measureSubmit runs, on one system: the raw JetStream closed loop, the
// jobwire closed loop, then both open loops at the same rate. The queue
// is drained before each jobwire window and before the raw open loop, so
// no window carries the previous one's backlog of jobs.
func measureSubmit(ctx context.Context, cfg config, sys *system, prof *profiler, logf func(string, ...any)) (*submitResult, error) {
	res := &submitResult{BodyBytes: len(submitBody), Concurrency: cfg.Concurrency}
	nc, js, err := connectJS(sys.NATSURL, "jobwire-bench-submit")
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	_, drop, err := scratchStream(ctx, js, jetstream.StreamConfig{
		Name: "BENCH_RAW", Subjects: []string{"bench.raw"}, Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy,
	})
	if err != nil {
		return nil, err
	}
	defer drop()
	payload := make([]byte, len(submitBody))
	for i := range payload {
		payload[i] = 'x'
	}
	rawOp := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := js.Publish(ctx, "bench.raw", payload)
		return err
	}
	a := newAPI(sys, max(cfg.Concurrency*4, 256))
	defer a.close()
	body := []byte(submitBody)
	jwOp := func(ctx context.Context) error {
		_, err := a.submit(ctx, body)
		return err
	}
	drain := func() error {
		d, err := waitDrained(ctx, js, cfg.PhaseTimeout)
		res.DrainedS = append(res.DrainedS, d.Seconds())
		return err
	}
	// window measures CPU (and records a profile) over a closed-loop window.
	window := func(use *cpuUse, profile string) func(bool) {
		var m *cpuMeter
		stopProfile := func() {}
		return func(open bool) {
			if open {
				if profile != "" {
					stopProfile = prof.start(profile)
				}
				m = startCPU(sys.PID)
				return
			}
			*use = m.stop()
			stopProfile()
		}
	}

	logf("submit: raw JetStream sync publish, %d clients, %v", cfg.Concurrency, cfg.Duration)
	res.Raw = closedLoop(ctx, cfg.Concurrency, cfg.Warmup, cfg.Duration, window(&res.RawCPU, ""), rawOp)
	if err := drain(); err != nil {
		return res, err
	}
	logf("submit: POST /api/jobs, %d clients, %v", cfg.Concurrency, cfg.Duration)
	res.Jobwire = closedLoop(ctx, cfg.Concurrency, cfg.Warmup, cfg.Duration, window(&res.JobwireCPU, "submit"), jwOp)

	res.Rate = cfg.Rate
	if res.Rate == 0 {
		res.Rate = max(res.Jobwire.PerSec/2, 1)
	}
	flight := max(cfg.Concurrency*4, 256)
	if err := drain(); err != nil {
		return res, err
	}
	logf("submit: POST /api/jobs, open loop at %.0f/s, %v", res.Rate, cfg.Duration)
	res.JobwireOpen = openLoop(ctx, res.Rate, flight, cfg.Duration, jwOp)
	if err := drain(); err != nil {
		return res, err
	}
	logf("submit: raw JetStream sync publish, open loop at %.0f/s, %v", res.Rate, cfg.Duration)
	res.RawOpen = openLoop(ctx, res.Rate, flight, cfg.Duration, rawOp)
	if err := drain(); err != nil {
		return res, err
	}

	unpark, err := parkType(ctx, js)
	if err != nil {
		return res, err
	}
	defer unpark()
	parked := []byte(strings.Replace(submitBody, `"demo"`, `"`+parkedType+`"`, 1))
	res.ParkedType, res.ParkedBodyBytes = parkedType, len(parked)
	parkOp := func(ctx context.Context) error {
		_, err := a.submit(ctx, parked)
		return err
	}
	logf("submit: POST /api/jobs of type %s (no runner), %d clients, %v", parkedType, cfg.Concurrency, cfg.Duration)
	res.Parked = closedLoop(ctx, cfg.Concurrency, cfg.Warmup, cfg.Duration, window(&res.ParkedCPU, "submit-parked"), parkOp)
	logf("submit: POST /api/jobs of type %s (no runner), open loop at %.0f/s, %v", parkedType, res.Rate, cfg.Duration)
	res.ParkedOpen = openLoop(ctx, res.Rate, flight, cfg.Duration, parkOp)

	input := json.RawMessage(`{"steps":1,"step_ms":0}`)
	goOp := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := jobs.Enqueue(ctx, js, jobs.Request{ID: jobs.NewID(time.Now()), Type: parkedType, Input: input, CreatedAt: time.Now(), Owner: "user:bench"})
		return err
	}
	logf("submit: jobs.Enqueue of type %s, %d goroutines, %v", parkedType, cfg.Concurrency, cfg.Duration)
	res.GoSubmit = closedLoop(ctx, cfg.Concurrency, cfg.Warmup, cfg.Duration, window(&res.GoSubmitCPU, "submit-go"), goOp)

	res.BatchSize, res.BatchWorkers = batchSize, batchWorkers
	batchOp := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		msgs := make([]*nats.Msg, batchSize)
		now := time.Now()
		for i := range msgs {
			msgs[i], _ = jobs.RequestMsg(jobs.Request{ID: jobs.NewID(now), Type: parkedType, Input: input, CreatedAt: now, Owner: "user:bench"})
		}
		return errors.Join(jobs.EnqueueMany(ctx, js, msgs)...)
	}
	logf("submit: batches of %d (jobs.EnqueueMany), %d goroutines, %v", batchSize, batchWorkers, cfg.Duration)
	res.Batch = closedLoop(ctx, batchWorkers, cfg.Warmup, cfg.Duration, nil, batchOp)
	res.BatchJobsS = res.Batch.PerSec * batchSize
	reqBytes := make([]byte, requestBytes(input))
	for i := range reqBytes {
		reqBytes[i] = 'x'
	}
	asyncOp := func(ctx context.Context) error {
		for range batchSize {
			if _, err := js.PublishAsync("bench.raw", reqBytes); err != nil {
				return err
			}
		}
		select {
		case <-js.PublishAsyncComplete():
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	logf("submit: raw JetStream async publish, %d-message batches, %d goroutines, %v", batchSize, batchWorkers, cfg.Duration)
	res.RawAsync = closedLoop(ctx, batchWorkers, cfg.Warmup, cfg.Duration, nil, asyncOp)
	res.RawAsyncMsgS = res.RawAsync.PerSec * batchSize
	return res, res.check()
}

// Batch submit load: batches of batchSize jobs from batchWorkers
// goroutines (the batch target compares jobs/s with raw async
// publishes).
const (
	batchSize    = 1000
	batchWorkers = 2
)

// requestBytes is the size of a stored request of the parked type with
// input.
func requestBytes(input json.RawMessage) int {
	b, _ := jobs.Request{ID: jobs.NewID(time.Now()), Type: parkedType, Input: input, CreatedAt: time.Now(), Owner: "user:bench"}.MarshalJSON()
	return len(b)
}

// parkType registers a job type that no runner serves, with the demo
// type's input schema, so submissions do all the gateway's work but no
// runner picks them up. The returned function purges its job requests
// from the queue and removes the type.
func parkType(ctx context.Context, js jetstream.JetStream) (func(), error) {
	kv, err := js.KeyValue(ctx, jobs.TypesBucket)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", jobs.TypesBucket, err)
	}
	e, err := kv.Get(ctx, "demo")
	if err != nil {
		return nil, fmt.Errorf("the demo job type is not registered: %w", err)
	}
	var info jobs.TypeInfo
	if err := json.Unmarshal(e.Value(), &info); err != nil {
		return nil, err
	}
	info.Type, info.Description = parkedType, "jobwire-bench: accepted and stored, never run"
	b, _ := json.Marshal(info)
	if _, err := kv.Put(ctx, parkedType, b); err != nil {
		return nil, err
	}
	return func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = kv.Delete(cctx, parkedType)
		if s, err := js.Stream(cctx, jobs.Stream); err == nil {
			_ = s.Purge(cctx, jetstream.WithPurgeSubject(jobs.QueueFilter(parkedType)))
		}
	}, nil
}

// check reports a run that cannot stand as a measurement.
func (r *submitResult) check() error {
	for _, x := range []struct {
		name string
		l    loadResult
	}{{"jobwire closed loop", r.Jobwire}, {"raw closed loop", r.Raw}, {"jobwire open loop", r.JobwireOpen}, {"raw open loop", r.RawOpen},
		{"parked closed loop", r.Parked}, {"parked open loop", r.ParkedOpen}, {"Go submit closed loop", r.GoSubmit},
		{"batch closed loop", r.Batch}, {"raw async closed loop", r.RawAsync}} {
		if x.l.Errors > 0 {
			return fmt.Errorf("submit, %s: %d errors, first: %s", x.name, x.l.Errors, x.l.FirstError)
		}
		if x.l.Ops == 0 {
			return fmt.Errorf("submit, %s: no operation completed", x.name)
		}
	}
	return nil
}
