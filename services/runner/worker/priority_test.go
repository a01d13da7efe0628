package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
)

// startLog records, in order, the label (the input) of every job a handler
// starts, and when.
type startLog struct {
	mu     sync.Mutex
	labels []string
	times  map[string]time.Time
}

func (l *startLog) add(job *Job) string {
	var label string
	_ = json.Unmarshal(job.Input, &label)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.labels = append(l.labels, label)
	if l.times == nil {
		l.times = map[string]time.Time{}
	}
	l.times[label] = time.Now()
	return label
}

func (l *startLog) started() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.labels)
}

func (l *startLog) startedAt(label string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.times[label]
	return t, ok
}

// gatedType is a job type whose job labelled "blocker" runs until gate is
// closed; every other job returns at once.
func gatedType(name string, l *startLog, gate chan struct{}) JobType {
	return jobType(name, func(ctx context.Context, job *Job) (any, error) {
		if l.add(job) == "blocker" {
			select {
			case <-gate:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return "ok", nil
	})
}

// enqueue stores a job of type typ at priority p (0: normal), its input
// the label, as the gateway does, and returns its id.
func (e *env) enqueue(typ string, p int, label string) string {
	e.t.Helper()
	id := jobs.NewID(time.Now())
	in, _ := json.Marshal(label)
	if _, err := jobs.Enqueue(e.ctx, e.js, jobs.Request{ID: id, Type: typ, Priority: p, Input: in, CreatedAt: time.Now().UTC()}); err != nil {
		e.t.Fatalf("enqueue %s: %v", label, err)
	}
	return id
}

// waitStarted waits until the handler started n jobs.
func (e *env) waitStarted(l *startLog, n int) {
	e.t.Helper()
	e.eventually(fmt.Sprintf("%d jobs started", n), func() (bool, string) {
		got := l.started()
		return len(got) >= n, strings.Join(got, " ")
	})
}

// A runner with no free slot when jobs of every priority wait runs them,
// once a slot frees, high first, then normal, then low, whatever order
// they were submitted in; each from its own consumer.
func TestPrioritiesRunHighThenNormalThenLow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var l startLog
	gate := make(chan struct{})
	// Stored before the runner starts: its first fetch takes it, so the
	// runner never waits idle with fetches open.
	blocker := e.enqueue("ranked", 0, "blocker")
	e.startRunner(Config{Concurrency: 1}, gatedType("ranked", &l, gate))
	e.waitStarted(&l, 1)

	ids := []string{
		e.enqueue("ranked", jobs.PriorityLow, "low"),
		e.enqueue("ranked", jobs.PriorityNormal, "normal"),
		e.enqueue("ranked", jobs.PriorityHigh, "high"),
	}
	for _, p := range jobs.Priorities {
		want := uint64(1)
		if p == jobs.PriorityNormal {
			want++ // the blocker
		}
		e.eventually("the job waiting on its priority's consumer", func() (bool, string) {
			ci, err := e.consumerNamed(jobs.PriorityConsumerName(p, "ranked"))
			if err != nil {
				return false, err.Error()
			}
			return ci.NumPending+uint64(ci.NumAckPending) == want, fmt.Sprintf("%s: pending %d, ack pending %d", ci.Name, ci.NumPending, ci.NumAckPending)
		})
	}
	close(gate)
	for _, id := range append(ids, blocker) {
		if end := e.waitEnded(id); end.Status != jobs.StatusSucceeded {
			t.Errorf("job %s ended %s", id, describe(end))
		}
	}
	if got, want := l.started(), []string{"blocker", "high", "normal", "low"}; !slices.Equal(got, want) {
		t.Errorf("jobs started in the order %v, want %v", got, want)
	}
	if ev := e.history(ids[2])[0]; ev.Priority != jobs.PriorityHigh {
		t.Errorf("the high job's queued event has priority %d, want %d", ev.Priority, jobs.PriorityHigh)
	}
}

// With every priority backed up, a runner takes 8 high, 1 normal and 1
// low job of every 10 (docs/lifecycle.md, "Priorities"): the 5th, 15th, …
// job it takes is normal, the 10th, 20th, … low. So a steady supply of
// high jobs never starves the others.
func TestPrioritiesDoNotStarveLowerOnes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var l startLog
	gate := make(chan struct{})
	blocker := e.enqueue("ranked", 0, "blocker") // the runner's 1st job
	e.startRunner(Config{Concurrency: 1}, gatedType("ranked", &l, gate))
	e.waitStarted(&l, 1)

	// All stored at once, while the runner is busy.
	var msgs []*nats.Msg
	var ids []string
	add := func(p, n int) {
		for i := range n {
			id := jobs.NewID(time.Now())
			in, _ := json.Marshal(fmt.Sprintf("%s-%d", jobs.PriorityName(p), i))
			m, err := jobs.RequestMsg(jobs.Request{ID: id, Type: "ranked", Priority: p, Input: in, CreatedAt: time.Now().UTC()})
			if err != nil {
				t.Fatal(err)
			}
			msgs, ids = append(msgs, m), append(ids, id)
		}
	}
	add(jobs.PriorityLow, 5)
	add(jobs.PriorityNormal, 5)
	add(jobs.PriorityHigh, 30)
	for i, err := range jobs.EnqueueMany(e.ctx, e.js, msgs) {
		if err != nil {
			t.Fatalf("enqueue %d: %v", i, err)
		}
	}
	close(gate)
	for _, id := range append(ids, blocker) {
		e.waitEnded(id)
	}

	got := l.started()
	var levels []string // of the runner's jobs 2 to 21, while all three wait
	for _, label := range got[1:21] {
		level, _, _ := strings.Cut(label, "-")
		levels = append(levels, level)
	}
	var want []string
	for k := 2; k <= 21; k++ {
		switch {
		case k%10 == 0:
			want = append(want, "low")
		case k%5 == 0:
			want = append(want, "normal")
		default:
			want = append(want, "high")
		}
	}
	if !slices.Equal(levels, want) {
		t.Errorf("jobs 2 to 21 by priority:\n got  %v\n want %v\n(all: %v)", levels, want, got)
	}
}

// The figure of issue 17: with a backlog of 10,000 low jobs (20 ms each,
// concurrency 4), a high job starts at the next free slot. It logs how
// long the high job waited, against the job's duration (docs/BENCHMARKS.md,
// "Priorities"), and asserts only an ordering fact: at most a few low jobs
// (those fetched as it was stored, and one low turn) start between the
// high job's submit and its start.
func TestPriorityHighJobOvertakesLowBacklog(t *testing.T) {
	if testing.Short() {
		t.Skip("stores 10,000 jobs")
	}
	e := newEnv(t)
	const (
		backlog     = 10_000
		concurrency = 4
		jobTime     = 20 * time.Millisecond
	)
	var l startLog
	e.startRunner(Config{Concurrency: concurrency}, jobType("bulk", func(ctx context.Context, job *Job) (any, error) {
		l.add(job)
		select {
		case <-time.After(jobTime): // the job's work
			return "ok", nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}))
	msgs := make([]*nats.Msg, backlog)
	for i := range msgs {
		in, _ := json.Marshal(fmt.Sprintf("low-%d", i))
		m, err := jobs.RequestMsg(jobs.Request{ID: jobs.NewID(time.Now()), Type: "bulk", Priority: jobs.PriorityLow, Input: in, CreatedAt: time.Now().UTC()})
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = m
	}
	for i, err := range jobs.EnqueueMany(e.ctx, e.js, msgs) {
		if err != nil {
			t.Fatalf("enqueue %d: %v", i, err)
		}
	}
	e.waitStarted(&l, 20) // the runner is busy with the backlog

	var waits []time.Duration
	for i := range 20 {
		label := fmt.Sprintf("high-%d", i)
		before := len(l.started())
		submitted := time.Now()
		e.enqueue("bulk", jobs.PriorityHigh, label)
		var started time.Time
		e.eventually(label+" to start", func() (bool, string) {
			var ok bool
			started, ok = l.startedAt(label)
			return ok, fmt.Sprintf("%d jobs started", len(l.started()))
		})
		got := l.started()
		lows := slices.Index(got[before:], label) // low jobs started between the submit and the high job's start
		if lows > 2*concurrency {
			t.Errorf("%d low jobs started between %s's submit and its start, want at most %d", lows, label, 2*concurrency)
		}
		waits = append(waits, started.Sub(submitted))
		t.Logf("%s started %v after its submit (job duration %v, %d low jobs started in between; %d low jobs waiting)",
			label, started.Sub(submitted).Round(100*time.Microsecond), jobTime, lows, backlog-len(got))
	}
	slices.Sort(waits)
	t.Logf("high job's wait with a backlog of %d low jobs: median %v, max %v (job duration %v, concurrency %d)",
		backlog, waits[len(waits)/2].Round(100*time.Microsecond), waits[len(waits)-1].Round(100*time.Microsecond), jobTime, concurrency)
}
