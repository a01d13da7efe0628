package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// loadResult is one load run: how many operations completed in the
// measured window, how fast, and how long each took.
type loadResult struct {
	Ops        int64   `json:"ops"`
	Errors     int64   `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	Seconds    float64 `json:"seconds"`
	PerSec     float64 `json:"per_sec"`
	Latency    latency `json:"latency"`
	// Open loop only.
	TargetRate float64 `json:"target_rate,omitempty"`
	Skipped    int64   `json:"skipped,omitempty"` // not sent: too many in flight
	MaxFlight  int     `json:"max_in_flight,omitempty"`
}

type errorTally struct {
	n     atomic.Int64
	once  sync.Once
	first string
}

func (t *errorTally) add(err error) {
	t.n.Add(1)
	t.once.Do(func() { t.first = err.Error() })
}

// closedLoop runs op from workers goroutines back to back: warmup unmeasured,
// then a window of length d. Operations started inside the window count.
// window, if not nil, is called when the window opens and when it closes.
// It returns once every worker has finished its last operation.
func closedLoop(ctx context.Context, workers int, warmup, d time.Duration, window func(open bool), op func(context.Context) error) loadResult {
	var h hist
	var errs errorTally
	var ops atomic.Int64
	start := time.Now()
	from, until := start.Add(warmup), start.Add(warmup+d)
	windowDone := make(chan struct{})
	go func() {
		defer close(windowDone)
		if window == nil {
			return
		}
		sleepCtx(ctx, time.Until(from))
		window(true)
		sleepCtx(ctx, time.Until(until))
		window(false)
	}()
	defer func() { <-windowDone }()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				t := time.Now()
				if !t.Before(until) {
					return
				}
				err := op(ctx)
				if t.Before(from) {
					continue
				}
				if err != nil {
					errs.add(err)
					continue
				}
				ops.Add(1)
				h.record(time.Since(t))
			}
		})
	}
	wg.Wait()
	r := loadResult{Ops: ops.Load(), Errors: errs.n.Load(), FirstError: errs.first, Seconds: d.Seconds(), Latency: h.summary()}
	r.PerSec = float64(r.Ops) / r.Seconds
	return r
}

// openLoop starts op at a fixed rate for d, whatever the answers; each
// latency is measured from the moment the operation was due, so a system
// (or a generator) that falls behind is charged for the wait. At most
// maxFlight operations run at once; when that many are in flight, the
// due operation is skipped and counted.
func openLoop(ctx context.Context, rate float64, maxFlight int, d time.Duration, op func(context.Context) error) loadResult {
	return openLoopDue(ctx, rate, maxFlight, d, func(ctx context.Context, _ time.Time) error { return op(ctx) })
}

// openLoopDue is openLoop with each operation told when it was due (to
// measure, from there, something that completes after op returns).
func openLoopDue(ctx context.Context, rate float64, maxFlight int, d time.Duration, op func(ctx context.Context, due time.Time) error) loadResult {
	var h hist
	var errs errorTally
	var ops, skipped atomic.Int64
	sem := make(chan struct{}, maxFlight)
	var wg sync.WaitGroup
	start := time.Now()
	n := int64(rate * d.Seconds())
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		select {
		case sem <- struct{}{}:
		default:
			skipped.Add(1)
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := op(ctx, due); err != nil {
				errs.add(err)
				return
			}
			ops.Add(1)
			h.record(time.Since(due))
		})
	}
	wg.Wait()
	r := loadResult{Ops: ops.Load(), Errors: errs.n.Load(), FirstError: errs.first, Seconds: d.Seconds(),
		Latency: h.summary(), TargetRate: rate, Skipped: skipped.Load(), MaxFlight: maxFlight}
	r.PerSec = float64(r.Ops) / r.Seconds
	return r
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
