package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// memoryResult is the gateway's resident memory per idle watcher, against
// the same process's memory per idle plain NATS subscriber (the embedded
// NATS server runs in the gateway's process).
type memoryResult struct {
	Idle      int     `json:"idle"`
	Requested int     `json:"requested"`
	Jobwire   memSide `json:"jobwire"`
	Raw       memSide `json:"raw_nats"`
	Note      string  `json:"note"`
}

// memSide is one side: RSS before any watcher, with half of them, with all.
type memSide struct {
	Connections  int       `json:"connections"`
	SourceAddrs  int       `json:"source_addresses"`
	SetupSeconds float64   `json:"setup_seconds"`
	Before       memSample `json:"before"`
	Half         memSample `json:"half"`
	After        memSample `json:"after"`
	// PerWatcher is (after - before) ÷ N; Marginal is (after - half) ÷ (N - N/2),
	// which is less disturbed by memory the process had freed but kept.
	PerWatcher     float64 `json:"rss_bytes_per_watcher"`
	Marginal       float64 `json:"rss_bytes_per_watcher_marginal"`
	AnonPerWatcher float64 `json:"rss_anon_bytes_per_watcher"`
	// The live heap and goroutine stacks after a collection with all
	// connections open and after they closed (GODEBUG=gctrace=1, MiB
	// resolution), and their difference per connection.
	HeapWith         heapSample `json:"heap_with"`
	HeapWithout      heapSample `json:"heap_without"`
	HeapPerWatcher   float64    `json:"live_heap_bytes_per_watcher"`
	StacksPerWatcher float64    `json:"stack_bytes_per_watcher"`
	HeapError        string     `json:"heap_error,omitempty"`
}

const heapNote = "the gateway exposes no heap figure: RSS (VmRSS, RssAnon) of the gateway process from /proc, which also holds the embedded NATS server and the runner; " +
	"live heap and stacks from the Go runtime's GODEBUG=gctrace=1 lines after a collection the tool provokes with GET /api/jobs requests"

// idleConns opens connections [from, to) that each follow one finished job
// and then stay idle; close ends them all.
type idleConns interface {
	open(ctx context.Context, from, to int) error
	close()
	sources() int
}

func measureMemory(ctx context.Context, cfg config, l *launcher, logf func(string, ...any)) (*memoryResult, error) {
	res := &memoryResult{Requested: cfg.Idle, Idle: cfg.Idle, Note: heapNote}
	if limit := int(raiseFileLimit()); res.Idle > limit-300 {
		res.Idle = max(limit-300, 1)
		res.Note += fmt.Sprintf("; %d idle watchers asked for, %d measured: the file descriptor limit is %d", cfg.Idle, res.Idle, limit)
	}
	sides := []struct {
		name string
		side *memSide
		make func(sys *system, ids []string) idleConns
	}{
		{"WebSocket watchers", &res.Jobwire, func(sys *system, ids []string) idleConns { return newIdleWS(sys, ids) }},
		{"plain NATS subscribers", &res.Raw, func(sys *system, ids []string) idleConns { return newIdleNATS(sys, ids) }},
	}
	for _, s := range sides {
		sys, release, err := l.system(ctx, "GODEBUG=gctrace=1")
		if err != nil {
			return res, err
		}
		err = func() error {
			defer release()
			if sys.PID <= 0 {
				return errSkipped("memory: the gateway's pid is unknown (pass --gateway-pid with --url)")
			}
			logf("memory: %d finished jobs to watch", res.Idle)
			run, err := runJobs(ctx, sys, res.Idle, cfg.EnqueueWorkers, noopInput, cfg.PhaseTimeout)
			if err != nil {
				return err
			}
			nc, err := connect(sys.NATSURL, "jobwire-bench-memory", nil)
			if err != nil {
				return err
			}
			js, _ := jetstream.New(nc)
			_, err = waitDrained(ctx, js, cfg.PhaseTimeout)
			nc.Close()
			if err != nil {
				return err
			}
			logf("memory: %d idle %s", res.Idle, s.name)
			return measureIdle(ctx, cfg, sys, res.Idle, s.side, s.make(sys, run.ids))
		}()
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// measureIdle reads the gateway's RSS before, with half and with all n
// idle connections open; then its live heap with them and after they
// closed.
func measureIdle(ctx context.Context, cfg config, sys *system, n int, side *memSide, conns idleConns) error {
	closed := false
	defer func() {
		if !closed {
			conns.close()
		}
	}()
	side.Connections = n
	side.SourceAddrs = conns.sources()
	read := func(into *memSample) error {
		sleepCtx(ctx, cfg.Settle)
		m, err := readMem(sys.PID)
		*into = m
		return err
	}
	if err := read(&side.Before); err != nil {
		return err
	}
	start := time.Now()
	if err := conns.open(ctx, 0, n/2); err != nil {
		return err
	}
	if err := read(&side.Half); err != nil {
		return err
	}
	if err := conns.open(ctx, n/2, n); err != nil {
		return err
	}
	side.SetupSeconds = time.Since(start).Seconds() - cfg.Settle.Seconds()
	if err := read(&side.After); err != nil {
		return err
	}
	if !sys.alive() {
		return fmt.Errorf("memory: the gateway exited%s", sys.logTail())
	}
	side.PerWatcher = float64(side.After.RSS-side.Before.RSS) / float64(n)
	side.AnonPerWatcher = float64(side.After.RSSAnon-side.Before.RSSAnon) / float64(n)
	if rest := n - n/2; rest > 0 {
		side.Marginal = float64(side.After.RSS-side.Half.RSS) / float64(rest)
	}

	// The heap figures come last: provoking collections makes garbage,
	// which would disturb the RSS readings.
	heapErr := func() error {
		var err error
		if side.HeapWith, err = liveHeap(ctx, sys, time.Minute); err != nil {
			return err
		}
		conns.close()
		closed = true
		sleepCtx(ctx, cfg.Settle)
		if side.HeapWithout, err = liveHeap(ctx, sys, time.Minute); err != nil {
			return err
		}
		side.HeapPerWatcher = float64((side.HeapWith.LiveMiB-side.HeapWithout.LiveMiB)<<20) / float64(n)
		side.StacksPerWatcher = float64((side.HeapWith.StacksMiB-side.HeapWithout.StacksMiB)<<20) / float64(n)
		return nil
	}()
	if heapErr != nil {
		side.HeapError = heapErr.Error()
	}
	return nil
}

// idleWS is n WebSockets, connection i watching finished job ids[i].
type idleWS struct {
	d       *wsDialer
	ids     []string
	ctx     context.Context
	cancel  context.CancelFunc
	mu      sync.Mutex
	conns   []*websocket.Conn
	readers sync.WaitGroup
	errs    errorTally
}

func newIdleWS(sys *system, ids []string) *idleWS {
	ctx, cancel := context.WithCancel(context.Background())
	return &idleWS{d: newWSDialer(sys, len(ids)), ids: ids, ctx: ctx, cancel: cancel}
}

func (w *idleWS) sources() int { return len(w.d.ips) }

func (w *idleWS) open(ctx context.Context, from, to int) error {
	var got sync.WaitGroup
	err := parallel(ctx, to-from, 64, func(k int) error {
		i := from + k
		if i >= len(w.ids) {
			return fmt.Errorf("memory: only %d finished jobs for %d watchers", len(w.ids), to)
		}
		c, err := w.d.dial(ctx, i)
		if err != nil {
			return err
		}
		w.mu.Lock()
		w.conns = append(w.conns, c)
		w.mu.Unlock()
		got.Add(1)
		first := sync.OnceFunc(got.Done)
		w.readers.Go(func() {
			defer first()
			err := readFrames(w.ctx, c, func(b []byte, _ time.Time) {
				if !bytes.HasPrefix(b, eventPrefix) {
					w.errs.add(fmt.Errorf("idle watcher %d: %s", i, b))
				}
				first()
			})
			if w.ctx.Err() == nil && !closedConn(err) {
				w.errs.add(fmt.Errorf("idle watcher %d: %w", i, err))
			}
		})
		return watch(ctx, c, w.ids[i])
	})
	if err != nil {
		return err
	}
	if !waitGroupTimeout(&got, time.Minute) {
		return errors.New("memory: idle watchers got no first event within a minute")
	}
	if n := w.errs.n.Load(); n > 0 {
		return fmt.Errorf("memory: %d errors, first: %s", n, w.errs.first)
	}
	return nil
}

func (w *idleWS) close() {
	w.mu.Lock()
	for _, c := range w.conns {
		_ = c.CloseNow()
	}
	w.mu.Unlock()
	w.cancel()
	w.readers.Wait()
}

// idleNATS is n plain NATS connections, connection i subscribed to
// jobs.<ids[i]>.progress.
type idleNATS struct {
	url   string
	ids   []string
	mu    sync.Mutex
	conns []*nats.Conn
}

func newIdleNATS(sys *system, ids []string) *idleNATS {
	return &idleNATS{url: sys.NATSURL, ids: ids}
}

func (s *idleNATS) sources() int { return len(sourceIPs(s.url, len(s.ids))) }

func (s *idleNATS) open(ctx context.Context, from, to int) error {
	ips := sourceIPs(s.url, len(s.ids))
	return parallel(ctx, to-from, 32, func(k int) error {
		i := from + k
		if i >= len(s.ids) {
			return fmt.Errorf("memory: only %d finished jobs for %d subscribers", len(s.ids), to)
		}
		c, err := connect(s.url, fmt.Sprintf("jobwire-bench-idle-%d", i), pick(ips, i))
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		if _, err := c.Subscribe(jobs.ProgressSubject(s.ids[i]), func(*nats.Msg) {}); err != nil {
			return err
		}
		return c.Flush()
	})
}

func (s *idleNATS) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
}

// errSkipped marks a phase that cannot run against this system; it is
// reported, not counted as a failure.
type errSkipped string

func (e errSkipped) Error() string { return string(e) }
