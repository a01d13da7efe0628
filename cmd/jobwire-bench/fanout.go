package main

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
)

// fanoutResult compares WebSocket watchers of the gateway with as many
// plain NATS subscribers, each following the same number of jobs that
// produce events at the same pace.
type fanoutResult struct {
	Jobs     int        `json:"jobs"`
	Watchers int        `json:"watchers"`
	Steps    int        `json:"steps"`
	StepMS   int        `json:"step_ms"`
	Seconds  float64    `json:"window_seconds"`
	Jobwire  fanoutSide `json:"jobwire"`
	Raw      fanoutSide `json:"raw_nats"`
}

// fanoutSide is one side's figures over the measured window.
type fanoutSide struct {
	Connections    int     `json:"connections"`
	SourceAddrs    int     `json:"source_addresses"`
	SetupSeconds   float64 `json:"setup_seconds"`
	Produced       int64   `json:"events_produced"` // stored by the jobs in the window
	ProducedPerSec float64 `json:"events_produced_per_sec"`
	Delivered      int64   `json:"events_delivered"` // received by all watchers in the window
	PerSec         float64 `json:"delivered_per_sec"`
	Completeness   float64 `json:"completeness"` // delivered ÷ (produced × watchers)
	Latency        latency `json:"latency"`      // event time → received
	Gaps           int64   `json:"seq_gaps"`     // events a watcher never got (coalesced)
	Disorder       int64   `json:"seq_disorder"` // events older than one already received
	Errors         int64   `json:"errors"`
	FirstError     string  `json:"first_error,omitempty"`
	CPU            cpuUse  `json:"cpu"`
	CPUPerEventUS  float64 `json:"gateway_cpu_us_per_delivered_event,omitempty"`
	// SourceLatency is event time → received by the tool's own single NATS
	// subscriber (the probe): what the watchers' latency is built on.
	SourceLatency latency `json:"source_latency"`
}

// tally counts what the watchers of one side receive.
type tally struct {
	measuring          atomic.Bool
	delivered          atomic.Int64
	gaps, disorder     atomic.Int64
	h                  hist
	errs               errorTally
	produced, finished atomic.Int64 // seen by the probe in the window
	probe              hist
}

// follower is one connection's view: the last seq of every job it follows.
// Only the connection's reader touches it.
type follower struct {
	last    map[string]uint64
	pending int    // jobs whose first event has not arrived yet
	ready   func() // called once, when pending reaches 0
}

// event records one received event of job id. With snapshotFirst, the
// first event of each job is its current state, not a live event.
func (t *tally) event(f *follower, id string, data []byte, now time.Time, snapshotFirst bool) {
	seq := eventSeq(data)
	last, known := f.last[id]
	f.last[id] = max(seq, last)
	if !known {
		f.pending--
		if f.pending == 0 && f.ready != nil {
			f.ready()
		}
		if snapshotFirst {
			return
		}
	}
	if known && seq <= last {
		t.disorder.Add(1)
		return
	}
	if !t.measuring.Load() {
		return
	}
	if known && seq > last+1 {
		t.gaps.Add(int64(seq - last - 1))
	}
	t.delivered.Add(1)
	if at, ok := eventTime(data); ok {
		t.h.record(now.Sub(at))
	}
}

// fanoutSteps makes the jobs outlast connection setup and the window.
func fanoutSteps(cfg config) int {
	d := cfg.Warmup + cfg.Duration + 30*time.Second
	return min(int(d/(time.Duration(cfg.StepMS)*time.Millisecond))+1, 10000)
}

func measureFanout(ctx context.Context, cfg config, sys *system, prof *profiler, logf func(string, ...any)) (*fanoutResult, error) {
	res := &fanoutResult{Jobs: cfg.FanoutJobs, Watchers: cfg.Watchers, Steps: fanoutSteps(cfg), StepMS: cfg.StepMS, Seconds: cfg.Duration.Seconds()}
	nc, js, err := connectJS(sys.NATSURL, "jobwire-bench-fanout")
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	a := newAPI(sys, 16)
	defer a.close()

	logf("fanout: %d WebSocket watchers × %d jobs", cfg.Watchers, cfg.FanoutJobs)
	if err := fanoutRound(ctx, cfg, sys, nc, a, res, &res.Jobwire, prof, wsWatchers); err != nil {
		return res, err
	}
	if _, err := waitDrained(ctx, js, cfg.PhaseTimeout); err != nil {
		return res, err
	}
	logf("fanout: %d plain NATS subscribers × %d jobs", cfg.Watchers, cfg.FanoutJobs)
	if err := fanoutRound(ctx, cfg, sys, nc, a, res, &res.Raw, nil, natsWatchers); err != nil {
		return res, err
	}
	if _, err := waitDrained(ctx, js, cfg.PhaseTimeout); err != nil {
		return res, err
	}
	return res, nil
}

// watchersFunc connects n watchers of ids that report to t; it returns
// once all are following every job, with a function that disconnects
// them, and the number of source addresses used.
type watchersFunc func(ctx context.Context, cfg config, sys *system, ids []string, t *tally) (stop func(), sources int, err error)

// fanoutRound starts the jobs, connects the watchers, measures one window
// and cleans up.
func fanoutRound(ctx context.Context, cfg config, sys *system, nc *nats.Conn, a *api, res *fanoutResult, side *fanoutSide, prof *profiler,
	connectWatchers watchersFunc) error {
	body := fmt.Appendf(nil, `{"type":"demo","input":{"steps":%d,"step_ms":%d}}`, res.Steps, res.StepMS)
	ids := make([]string, cfg.FanoutJobs)
	for i := range ids {
		id, err := a.submit(ctx, body)
		if err != nil {
			return err
		}
		ids[i] = id
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		for _, id := range ids {
			_ = a.cancel(cctx, id)
		}
	}()

	t := &tally{}
	// The probe sees what the jobs produce, to tell how much of it arrived.
	probe := make([]*nats.Subscription, 0, len(ids))
	for _, id := range ids {
		sub, err := nc.Subscribe(jobs.ProgressSubject(id), func(m *nats.Msg) {
			if t.measuring.Load() {
				now := time.Now()
				t.produced.Add(1)
				if terminalStatus(eventStatus(m.Data)) {
					t.finished.Add(1)
				}
				if at, ok := eventTime(m.Data); ok {
					t.probe.record(now.Sub(at))
				}
			}
		})
		if err != nil {
			return err
		}
		probe = append(probe, sub)
	}
	defer func() {
		for _, s := range probe {
			_ = s.Unsubscribe()
		}
	}()
	if err := nc.Flush(); err != nil {
		return err
	}

	setup := time.Now()
	stop, sources, err := connectWatchers(ctx, cfg, sys, ids, t)
	side.Connections, side.SourceAddrs = cfg.Watchers, sources
	side.SetupSeconds = time.Since(setup).Seconds()
	if err != nil {
		return err
	}
	defer stop()

	sleepCtx(ctx, cfg.Warmup)
	stopProfile := func() {}
	if prof != nil {
		stopProfile = prof.start(fmt.Sprintf("fanout-%d", cfg.Watchers))
	}
	meter := startCPU(sys.PID)
	t.measuring.Store(true)
	sleepCtx(ctx, cfg.Duration)
	t.measuring.Store(false)
	side.CPU = meter.stop()
	stopProfile()

	secs := cfg.Duration.Seconds()
	side.Produced = t.produced.Load()
	side.ProducedPerSec = float64(side.Produced) / secs
	side.Delivered = t.delivered.Load()
	side.PerSec = float64(side.Delivered) / secs
	if side.Produced > 0 {
		side.Completeness = float64(side.Delivered) / float64(side.Produced*int64(cfg.Watchers))
	}
	side.Latency = t.h.summary()
	side.SourceLatency = t.probe.summary()
	side.Gaps, side.Disorder = t.gaps.Load(), t.disorder.Load()
	side.Errors, side.FirstError = t.errs.n.Load(), t.errs.first
	if side.Delivered > 0 && side.CPU.gatewayCPU > 0 {
		side.CPUPerEventUS = float64(side.CPU.gatewayCPU.Microseconds()) / float64(side.Delivered)
	}
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case side.Errors > 0:
		return fmt.Errorf("fanout: %d errors, first: %s", side.Errors, side.FirstError)
	case side.Delivered == 0:
		return fmt.Errorf("fanout: no event delivered in the window")
	case side.Disorder > 0:
		return fmt.Errorf("fanout: %d events arrived out of order", side.Disorder)
	case t.finished.Load() > 0:
		return fmt.Errorf("fanout: %d jobs ended inside the window (setup took %.1fs); raise --step-ms", t.finished.Load(), side.SetupSeconds)
	}
	return nil
}

// wsWatchers connects WebSocket watchers, each watching every job.
func wsWatchers(ctx context.Context, cfg config, sys *system, ids []string, t *tally) (func(), int, error) {
	d := newWSDialer(sys, cfg.Watchers)
	readCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var (
		mu      sync.Mutex
		conns   []*websocket.Conn
		readers sync.WaitGroup
		ready   sync.WaitGroup
	)
	stop := func() {
		mu.Lock()
		for _, c := range conns {
			_ = c.CloseNow()
		}
		mu.Unlock()
		cancel()
		readers.Wait()
	}
	ready.Add(cfg.Watchers)
	err := parallel(ctx, cfg.Watchers, 64, func(i int) error {
		c, err := d.dial(ctx, i)
		if err != nil {
			ready.Done()
			t.errs.add(err)
			return err
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		f := &follower{last: make(map[string]uint64, len(ids)), pending: len(ids), ready: ready.Done}
		readers.Go(func() {
			err := readFrames(readCtx, c, func(b []byte, now time.Time) {
				if !bytes.HasPrefix(b, eventPrefix) {
					t.errs.add(fmt.Errorf("watcher %d: %s", i, b))
					if f.pending > 0 { // an error about a watch: do not wait for it
						f.pending--
						if f.pending == 0 {
							f.ready()
						}
					}
					return
				}
				id := stringField(b, keyJobID)
				at := bytes.Index(b, keyEvent)
				if id == nil || at < 0 {
					t.errs.add(fmt.Errorf("watcher %d: malformed event frame %.200s", i, b))
					return
				}
				t.event(f, string(id), b[at:], now, true)
			})
			if f.pending > 0 { // a reader that ended early never will
				f.pending = 0
				ready.Done()
			}
			if readCtx.Err() == nil && !closedConn(err) {
				t.errs.add(fmt.Errorf("watcher %d: %w", i, err))
			}
		})
		for _, id := range ids {
			if err := watch(ctx, c, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		stop()
		return nil, len(d.ips), err
	}
	if !waitGroupTimeout(&ready, cfg.PhaseTimeout) {
		stop()
		return nil, len(d.ips), fmt.Errorf("fanout: watchers not following every job after %v", cfg.PhaseTimeout)
	}
	return stop, len(d.ips), nil
}

// natsWatchers connects plain NATS subscribers, one connection each,
// subscribed to every job's subject and read by one goroutine (like one
// WebSocket).
func natsWatchers(ctx context.Context, cfg config, sys *system, ids []string, t *tally) (func(), int, error) {
	ips := sourceIPs(sys.NATSURL, cfg.Watchers)
	done := make(chan struct{})
	var (
		mu      sync.Mutex
		conns   []*nats.Conn
		readers sync.WaitGroup
	)
	stop := func() {
		close(done)
		readers.Wait()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}
	err := parallel(ctx, cfg.Watchers, 32, func(i int) error {
		c, err := connect(sys.NATSURL, fmt.Sprintf("jobwire-bench-watcher-%d", i), pick(ips, i))
		if err != nil {
			t.errs.add(err)
			return err
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		ch := make(chan *nats.Msg, 8192)
		for _, id := range ids {
			if _, err := c.ChanSubscribe(jobs.ProgressSubject(id), ch); err != nil {
				return err
			}
		}
		if err := c.Flush(); err != nil {
			return err
		}
		f := &follower{last: make(map[string]uint64, len(ids)), pending: len(ids)}
		readers.Go(func() {
			for {
				select {
				case <-done:
					return
				case m := <-ch:
					id, _ := jobs.IDFromProgressSubject(m.Subject)
					t.event(f, id, m.Data, time.Now(), false)
				}
			}
		})
		return nil
	})
	if err != nil {
		stop()
		return nil, len(ips), err
	}
	return stop, len(ips), nil
}

func waitGroupTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}
