package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// watchResult is the "submit → final seen by a watcher" at a fixed
// rate (open loop): no-op jobs submitted over HTTP at Rate whatever the
// answers, and the time from the moment each submit was due to the moment
// its final event arrived on a WebSocket watching every job (watch_all),
// and on a plain NATS subscriber of jobs.<id>.progress. The baseline is
// the raw floor of the same path: a JetStream sync publish at the same
// rate, received by a subscriber of the stream's republish.
type watchResult struct {
	Rate     float64    `json:"rate"`
	Seconds  float64    `json:"window_seconds"`
	Submit   loadResult `json:"submit_open_loop"` // due → the submit's answer
	WSFinal  latency    `json:"ws_final"`         // due → final event on the WebSocket (watch_all)
	NATSFin  latency    `json:"nats_final"`       // due → final event on jobs.<id>.progress
	Made     latency    `json:"final_made"`       // due → the final event's time (set by the runner)
	Missing  int        `json:"finals_missing"`   // submitted jobs whose final the WebSocket never showed
	CPU      cpuUse     `json:"cpu"`
	CPUPerUS float64    `json:"gateway_cpu_us_per_job,omitempty"`

	Raw        loadResult `json:"raw_publish_open_loop"` // due → publish acknowledged
	RawFinal   latency    `json:"raw_republished"`       // due → republished message received
	RawMissing int        `json:"raw_missing"`
	RawCPU     cpuUse     `json:"raw_cpu"`
}

// arrivals pairs "submitted at due" with "final seen at" for one observer,
// whichever comes first (a final may arrive before the submit's answer).
type arrivals struct {
	mu    sync.Mutex
	due   map[string]time.Time // submitted, final not seen yet
	early map[string]time.Time // final seen, submit not answered yet
	h     *hist
}

func newArrivals() *arrivals {
	return &arrivals{due: map[string]time.Time{}, early: map[string]time.Time{}, h: &hist{}}
}

func (a *arrivals) submitted(id string, due time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if at, ok := a.early[id]; ok {
		delete(a.early, id)
		a.h.record(at.Sub(due))
		return
	}
	a.due[id] = due
}

func (a *arrivals) final(id string, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if due, ok := a.due[id]; ok {
		delete(a.due, id)
		a.h.record(at.Sub(due))
		return
	}
	a.early[id] = at
}

// pending is the number of submitted ids whose final has not arrived.
func (a *arrivals) pending() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.due)
}

// reset forgets everything (after the warm-up).
func (a *arrivals) reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.due, a.early, a.h = map[string]time.Time{}, map[string]time.Time{}, &hist{}
}

func (a *arrivals) summary() latency {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.h.summary()
}

// waitArrived polls until every observer has every final, or limit.
func waitArrived(ctx context.Context, limit time.Duration, obs ...*arrivals) error {
	deadline := time.Now().Add(limit)
	for {
		left := 0
		for _, o := range obs {
			left += o.pending()
		}
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d finals not seen after %v", left, limit)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
}

func measureWatch(ctx context.Context, cfg config, sys *system, prof *profiler, logf func(string, ...any)) (*watchResult, error) {
	res := &watchResult{Rate: cfg.WatchRate, Seconds: cfg.Duration.Seconds()}
	nc, js, err := connectJS(sys.NATSURL, "jobwire-bench-watch")
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	a := newAPI(sys, 256)
	defer a.close()
	flight := 256

	// The raw floor first: publish → republish → subscriber.
	logf("watch: raw JetStream publish → republish subscriber, open loop at %.0f/s, %v", cfg.WatchRate, cfg.Duration)
	if err := rawWatch(ctx, cfg, sys, nc, js, res, flight); err != nil {
		return res, err
	}

	ws, nt, made := newArrivals(), newArrivals(), newArrivals()
	sub, err := nc.Subscribe("jobs.*.progress", func(m *nats.Msg) {
		now := time.Now()
		if !terminalStatus(eventStatus(m.Data)) {
			return
		}
		id, ok := jobs.IDFromProgressSubject(m.Subject)
		if !ok {
			return
		}
		nt.final(id, now)
		if at, ok := eventTime(m.Data); ok {
			made.final(id, at)
		}
	})
	if err != nil {
		return res, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	_ = sub.SetPendingLimits(1<<20, 1<<30)
	if err := nc.Flush(); err != nil {
		return res, err
	}

	c, err := newWSDialer(sys, 1).dial(ctx, 0)
	if err != nil {
		return res, err
	}
	readCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var errs errorTally
	var reader sync.WaitGroup
	reader.Go(func() {
		err := readFrames(readCtx, c, func(b []byte, now time.Time) {
			if !bytes.HasPrefix(b, eventPrefix) {
				errs.add(fmt.Errorf("watcher: %.200s", b))
				return
			}
			id, at := stringField(b, keyJobID), bytes.Index(b, keyEvent)
			if id == nil || at < 0 {
				errs.add(fmt.Errorf("watcher: malformed event frame %.200s", b))
				return
			}
			if terminalStatus(eventStatus(b[at:])) {
				ws.final(string(id), now)
			}
		})
		if readCtx.Err() == nil && !closedConn(err) {
			errs.add(fmt.Errorf("watcher: %w", err))
		}
	})
	defer func() {
		_ = c.CloseNow()
		cancel()
		reader.Wait()
	}()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	err = c.Write(wctx, websocket.MessageText, []byte(`{"op":"watch_all"}`))
	wcancel()
	if err != nil {
		return res, fmt.Errorf("watch: send watch_all: %w", err)
	}

	body := []byte(submitBody)
	submit := func(ctx context.Context, due time.Time) error {
		id, err := a.submit(ctx, body)
		if err != nil {
			return err
		}
		ws.submitted(id, due)
		nt.submitted(id, due)
		made.submitted(id, due)
		return nil
	}
	// Warm-up: the feed is live once a job's final has come through it
	// (watch_all has no answer of its own); then a second of load.
	if err := submit(ctx, time.Now()); err != nil {
		return res, err
	}
	if err := waitArrived(ctx, cfg.PhaseTimeout, ws, nt); err != nil {
		return res, fmt.Errorf("watch: the watch_all feed showed no job: %w", err)
	}
	openLoopDue(ctx, cfg.WatchRate, flight, min(cfg.Warmup, time.Second), submit)
	if err := waitArrived(ctx, cfg.PhaseTimeout, ws, nt); err != nil {
		return res, fmt.Errorf("watch, warm-up: %w", err)
	}
	ws.reset()
	nt.reset()
	made.reset()

	logf("watch: POST /api/jobs → final on a watch_all WebSocket, open loop at %.0f/s, %v", cfg.WatchRate, cfg.Duration)
	stopProfile := prof.start("watch")
	meter := startCPU(sys.PID)
	res.Submit = openLoopDue(ctx, cfg.WatchRate, flight, cfg.Duration, submit)
	waitErr := waitArrived(ctx, cfg.PhaseTimeout, ws, nt)
	res.CPU = meter.stop()
	stopProfile()
	res.Missing = ws.pending()
	res.WSFinal, res.NATSFin, res.Made = ws.summary(), nt.summary(), made.summary()
	if res.Submit.Ops > 0 && res.CPU.gatewayCPU > 0 {
		res.CPUPerUS = float64(res.CPU.gatewayCPU.Microseconds()) / float64(res.Submit.Ops)
	}
	switch {
	case waitErr != nil:
		return res, fmt.Errorf("watch: %w", waitErr)
	case errs.n.Load() > 0:
		return res, fmt.Errorf("watch: %d errors, first: %s", errs.n.Load(), errs.first)
	case res.Submit.Errors > 0:
		return res, fmt.Errorf("watch: %d submits failed, first: %s", res.Submit.Errors, res.Submit.FirstError)
	case res.Submit.Ops == 0 || res.WSFinal.Samples == 0:
		return res, errors.New("watch: no job completed in the window")
	}
	return res, nil
}

// rawWatch is the baseline: open-loop JetStream sync publishes to a
// scratch stream that republishes every stored message, and the time from
// each publish's due moment to the republished copy's arrival.
func rawWatch(ctx context.Context, cfg config, sys *system, nc *nats.Conn, js jetstream.JetStream, res *watchResult, flight int) error {
	_, drop, err := scratchStream(ctx, js, jetstream.StreamConfig{
		Name: "BENCH_E2E", Subjects: []string{"bench.e2e.*"}, Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy,
		RePublish: &jetstream.RePublish{Source: "bench.e2e.*", Destination: "bench.e2eout.{{wildcard(1)}}"},
	})
	if err != nil {
		return err
	}
	defer drop()
	got := newArrivals()
	sub, err := nc.Subscribe("bench.e2eout.*", func(m *nats.Msg) {
		got.final(m.Subject[len("bench.e2eout."):], time.Now())
	})
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	_ = sub.SetPendingLimits(1<<20, 1<<30)
	if err := nc.Flush(); err != nil {
		return err
	}
	payload := bytes.Repeat([]byte("x"), requestBytes(noopInput))
	var mu sync.Mutex
	n := 0
	op := func(ctx context.Context, due time.Time) error {
		mu.Lock()
		n++
		key := strconv.Itoa(n)
		mu.Unlock()
		got.submitted(key, due)
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := js.Publish(ctx, "bench.e2e."+key, payload)
		return err
	}
	openLoopDue(ctx, cfg.WatchRate, flight, min(cfg.Warmup, time.Second), op)
	if err := waitArrived(ctx, cfg.PhaseTimeout, got); err != nil {
		return fmt.Errorf("watch baseline, warm-up: %w", err)
	}
	got.reset()
	meter := startCPU(sys.PID)
	res.Raw = openLoopDue(ctx, cfg.WatchRate, flight, cfg.Duration, op)
	waitErr := waitArrived(ctx, cfg.PhaseTimeout, got)
	res.RawCPU = meter.stop()
	res.RawMissing = got.pending()
	res.RawFinal = got.summary()
	switch {
	case waitErr != nil:
		return fmt.Errorf("watch baseline: %w", waitErr)
	case res.Raw.Errors > 0:
		return fmt.Errorf("watch baseline: %d publishes failed, first: %s", res.Raw.Errors, res.Raw.FirstError)
	}
	return nil
}
