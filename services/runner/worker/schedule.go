package worker

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go/jetstream"
)

// The rule that orders a runner's jobs (docs/lifecycle.md, "Priorities"):
// the runner counts the jobs it takes; the 10th, 20th, … job comes from
// the lowest priority that has work (low, else normal), the 5th, 15th, …
// from normal (else low), every other one from the highest priority that
// has work. With every priority backed up, a runner thus runs 8 high, 1
// normal and 1 low job of every 10; a priority with work is never passed
// over for more than 9 jobs in a row.
const (
	agingEvery = 10 // each agingEvery-th job: lowest priority first
	normalTurn = 5  // each normalTurn-th job (not an agingEvery-th): normal first
)

var (
	highFirst   = []int{jobs.PriorityHigh, jobs.PriorityNormal, jobs.PriorityLow}
	normalFirst = []int{jobs.PriorityNormal, jobs.PriorityLow, jobs.PriorityHigh}
	lowFirst    = []int{jobs.PriorityLow, jobs.PriorityNormal, jobs.PriorityHigh}
)

// pickOrder is the order of the priorities the runner's k-th job (from 1)
// is taken in, and how many jobs from k on are taken in that order.
func pickOrder(k int) (order []int, picks int) {
	switch {
	case k%agingEvery == 0:
		return lowFirst, 1
	case k%normalTurn == 0:
		return normalFirst, 1
	}
	return highFirst, normalTurn - k%normalTurn
}

// waited is what one waiting fetch brought: a job, or nothing (msg nil).
// Or the end of a check of a queue that failed (check).
type waited struct {
	q     *queue
	msg   jetstream.Msg
	err   error
	check bool
}

// scheduler is the runner's one loop that takes jobs: it alone takes
// slots, and it fetches from the consumers of every type and priority in
// the order of pickOrder.
//
// With free slots it fetches without waiting, priority after priority,
// for as many jobs as slots are free. When every queue is empty with
// slots still free, it opens a waiting fetch (one job, r.fetchWait) on
// every queue at once; these hold no slot, so a job of any type and
// priority starts as soon as it arrives. A waiting fetch outlives the
// round that opened it (see queue.fetch): a job it brings while every
// slot is taken goes straight back to the stream (Nak) for another
// runner or a later fetch.
type scheduler struct {
	r      *Runner
	levels map[int][]*queue // the queues of each priority, by type
	slots  chan struct{}
	start  func(jetstream.Msg) // runs a job on a slot taken for it
	taken  int                 // jobs taken so far
	turn   int                 // which type a priority's fetches start with
	wait   time.Duration

	waiters sync.WaitGroup
	arrived chan waited // one per open waiting fetch: never blocks
	got     []waited    // jobs waiting fetches brought, not started yet
}

func newScheduler(r *Runner, slots chan struct{}, start func(jetstream.Msg)) *scheduler {
	s := &scheduler{r: r, levels: map[int][]*queue{}, slots: slots, start: start, wait: r.fetchWait,
		arrived: make(chan waited, len(r.queues))}
	for _, q := range r.queues {
		s.levels[q.prio] = append(s.levels[q.prio], q)
	}
	return s
}

// run takes jobs until ctx ends, then waits for its waiting fetches and
// hands back what they brought.
func (s *scheduler) run(ctx context.Context) {
	s.loop(ctx)
	s.waiters.Wait()
	close(s.arrived)
	for w := range s.arrived {
		if w.msg != nil {
			s.got = append(s.got, w)
		}
	}
	for _, w := range s.got {
		_ = w.msg.Nak()
	}
}

func (s *scheduler) loop(ctx context.Context) {
	for {
		n, ok := s.reserve(ctx)
		if !ok {
			return
		}
		n -= s.startArrived(ctx, n)
		if n > 0 {
			n -= s.take(ctx, n)
		}
		unreserve(s.slots, n)
		if n > 0 && !s.idle(ctx) {
			return
		}
	}
}

// reserve takes every free slot, waiting for one if none is. A job a
// waiting fetch brings meanwhile goes back to the stream; a queue whose
// back-off ends meanwhile is checked.
func (s *scheduler) reserve(ctx context.Context) (int, bool) {
	for {
		if n := reserveFree(s.slots, cap(s.slots)); n > 0 {
			return n, true
		}
		s.recover(ctx)
		timer, retry := s.retryTimer()
		select {
		case s.slots <- struct{}{}:
			stop(timer)
			return 1 + reserveFree(s.slots, cap(s.slots)-1), true
		case w := <-s.arrived:
			if s.settle(w) {
				_ = w.msg.Nak() // no free slot: for another runner
			}
		case <-retry:
		case <-ctx.Done():
			stop(timer)
			return 0, false
		}
		stop(timer)
	}
}

// settle records the end of a waiting fetch; it is true if it brought a job.
func (s *scheduler) settle(w waited) bool {
	w.q.waiting = false
	if w.err != nil {
		s.failed(w.q, w.err, w.check)
	} else {
		w.q.failures.Reset()
	}
	return w.msg != nil
}

// startArrived starts the jobs waiting fetches brought, highest priority
// first, on up to n slots taken for them, and hands back the rest. It
// returns how many it started.
func (s *scheduler) startArrived(ctx context.Context, n int) int {
	for more := true; more; {
		select {
		case w := <-s.arrived:
			if s.settle(w) {
				s.got = append(s.got, w)
			}
		default:
			more = false
		}
	}
	slices.SortStableFunc(s.got, func(a, b waited) int { return a.q.prio - b.q.prio })
	started := 0
	for _, w := range s.got {
		if started == n || ctx.Err() != nil {
			_ = w.msg.Nak()
			continue
		}
		s.taken++
		started++
		s.start(w.msg)
	}
	s.got = s.got[:0]
	return started
}

// take fetches up to n jobs without waiting, in the order of pickOrder,
// and starts each on one of n slots taken for them. It returns how many it
// started: fewer than n when every queue ran out.
func (s *scheduler) take(ctx context.Context, n int) int {
	started := 0
	start := func(msg jetstream.Msg) {
		s.taken++
		started++
		s.start(msg)
	}
	for started < n && ctx.Err() == nil {
		order, picks := pickOrder(s.taken + 1)
		want := min(n-started, picks)
		got := 0
		for _, p := range order {
			got += s.takeFrom(ctx, p, want-got, start)
			if got == want {
				break
			}
		}
		if got < want {
			break // every queue is empty
		}
	}
	return started
}

// takeFrom fetches up to n jobs of priority p without waiting, from one
// type after the other (starting with another type each time).
func (s *scheduler) takeFrom(ctx context.Context, p, n int, start func(jetstream.Msg)) int {
	qs := s.levels[p]
	s.turn++
	got := 0
	for i := range qs {
		if got == n {
			break
		}
		q := qs[(s.turn+i)%len(qs)]
		if q.failures.Failures() > 0 {
			continue // backing off, or being checked (recover)
		}
		k, err := q.fetch(ctx, n-got, 0, start)
		got += k
		if err != nil {
			s.failed(q, err, false)
		}
	}
	return got
}

// failed backs q off after a failed fetch or check: 100ms doubling up to
// 30s, with jitter; a repeating failure is logged once a minute.
func (s *scheduler) failed(q *queue, err error, check bool) {
	if check {
		q.warn.Warn("cannot check or create the job type's consumer", err, "consumer", q.name())
	} else {
		q.warn.Warn("fetching jobs failed", err, "consumer", q.name(), "failures", q.failures.Failures()+1)
	}
	q.retryAt = time.Now().Add(q.failures.Next())
}

// recover checks, in the background, each queue whose back-off is over:
// it creates the queue's consumer again if it is gone (see queue.ensure).
// A queue that passes is fetched from again; one that fails backs off
// longer. Meanwhile the other queues go on.
func (s *scheduler) recover(ctx context.Context) {
	now := time.Now()
	for _, q := range s.r.queues {
		if q.failures.Failures() == 0 || q.waiting || now.Before(q.retryAt) {
			continue
		}
		q.waiting = true
		s.waiters.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, checkTimeout)
			defer cancel()
			s.arrived <- waited{q: q, err: q.ensure(cctx), check: true}
		})
	}
}

// checkTimeout bounds one check of a queue that failed.
const checkTimeout = 5 * time.Second

// retryTimer fires when the first back-off ends (never if none runs).
func (s *scheduler) retryTimer() (*time.Timer, <-chan time.Time) {
	var at time.Time
	for _, q := range s.r.queues {
		if q.failures.Failures() > 0 && !q.waiting && (at.IsZero() || q.retryAt.Before(at)) {
			at = q.retryAt
		}
	}
	if at.IsZero() {
		return nil, nil
	}
	t := time.NewTimer(max(time.Until(at), 0))
	return t, t.C
}

func stop(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

// idle waits, with slots free and every queue empty, for a job on any
// queue: it keeps a waiting fetch open on each queue that is not backing
// off, and returns when one brings a job. It is false when ctx ends.
func (s *scheduler) idle(ctx context.Context) bool {
	for {
		for _, q := range s.r.queues {
			if !q.waiting && q.failures.Failures() == 0 {
				s.open(ctx, q)
			}
		}
		s.recover(ctx)
		timer, retry := s.retryTimer()
		select {
		case w := <-s.arrived:
			if s.settle(w) {
				s.got = append(s.got, w)
				stop(timer)
				return true
			}
		case <-retry:
		case <-ctx.Done():
			stop(timer)
			return false
		}
		stop(timer)
	}
}

// open starts a waiting fetch of one job on q.
func (s *scheduler) open(ctx context.Context, q *queue) {
	q.waiting = true
	s.waiters.Go(func() {
		var msg jetstream.Msg
		_, err := q.fetch(ctx, 1, s.wait, func(m jetstream.Msg) { msg = m })
		s.arrived <- waited{q: q, msg: msg, err: err}
	})
}
