package jobclient_test

import (
	"context"
	"errors"
	"github.com/jobwire/jobwire/internal/natstest"
	"strings"
	"testing"
	"time"

	"github.com/jobwire/jobwire/shared/jobclient"
	"github.com/jobwire/jobwire/shared/jobs"
	"go.uber.org/goleak"
)

func TestWatchLiveFromStart(t *testing.T) {
	t.Parallel()
	s := startSystem(t)
	ctx := testContext(t, 30*time.Second)

	queued, err := s.client.Submit(ctx, "demo", map[string]int{"steps": 10, "step_ms": 20})
	if err != nil {
		t.Fatal(err)
	}
	got, err := collect(t, s.client.Watch(ctx, queued.JobID, 0))
	if err != nil {
		t.Fatalf("watch ended with %v after seqs %v", err, seqs(got))
	}
	final, err := s.client.Get(ctx, queued.JobID)
	if err != nil {
		t.Fatal(err)
	}
	checkRun(t, got, 1, final.Seq)
	if got[0].Kind != jobs.KindQueued || got[1].Kind != jobs.KindStarted {
		t.Fatalf("first kinds = %s, %s; want queued, started", got[0].Kind, got[1].Kind)
	}
	last := got[len(got)-1]
	if last.Kind != jobs.KindSucceeded || last.Status != jobs.StatusSucceeded || string(last.Result) != `{"steps":10}` {
		t.Fatalf("last event = %+v (result %s)", last, last.Result)
	}
	if len(got) < 4 {
		t.Fatalf("no progress events between started and succeeded: %v", seqs(got))
	}
	for _, ev := range got {
		if ev.JobID != queued.JobID || ev.Type != "demo" {
			t.Fatalf("event of another job or type: %+v", ev)
		}
	}
}

func TestWatchAfterSeqLive(t *testing.T) {
	t.Parallel()
	s := startSystem(t)
	ctx := testContext(t, 30*time.Second)

	queued, err := s.client.Submit(ctx, "demo", map[string]int{"steps": 10, "step_ms": 20})
	if err != nil {
		t.Fatal(err)
	}
	got, err := collect(t, s.client.Watch(ctx, queued.JobID, 1)) // seen "queued"
	if err != nil {
		t.Fatalf("watch ended with %v after seqs %v", err, seqs(got))
	}
	final, err := s.client.Get(ctx, queued.JobID)
	if err != nil {
		t.Fatal(err)
	}
	checkRun(t, got, 2, final.Seq)
}

// Watching a job that has ended yields the history after afterSeq and ends.
func TestWatchAfterCompletion(t *testing.T) {
	t.Parallel()
	s := startSystem(t)
	ctx := testContext(t, 30*time.Second)

	queued, err := s.client.Submit(ctx, "demo", map[string]int{"steps": 5, "step_ms": 5})
	if err != nil {
		t.Fatal(err)
	}
	n := waitTerminal(t, s.client, queued.JobID).Seq
	for k := uint64(0); k <= n+1; k++ {
		got, err := collect(t, s.client.Watch(ctx, queued.JobID, k))
		if err != nil {
			t.Fatalf("after %d: watch ended with %v after seqs %v", k, err, seqs(got))
		}
		checkRun(t, got, k+1, n) // k >= n: nothing
	}
}

func TestWatchInvalidID(t *testing.T) {
	t.Parallel()
	s := startBare(t)
	ctx := testContext(t, 10*time.Second)
	// A job exists, so a wildcard id that reached a subject would match it.
	registerType(t, s, jobs.TypeInfo{Type: "x"})
	if _, err := s.client.Submit(ctx, "x", nil); err != nil {
		t.Fatal(err)
	}

	for _, id := range []string{"", "*", ">", "a.b", "a b", strings.Repeat("a", 65)} {
		var yields int
		for ev, err := range s.client.Watch(ctx, id, 0) {
			yields++
			if !errors.Is(err, jobs.ErrInvalidID) || ev.JobID != "" {
				t.Errorf("id %q: yielded %+v, %v; want only jobs.ErrInvalidID", id, ev, err)
			}
		}
		if yields != 1 {
			t.Errorf("id %q: %d yields, want 1", id, yields)
		}
	}
}

func TestWatchUnknownJob(t *testing.T) {
	t.Parallel()
	s := startBare(t)
	ctx := testContext(t, 10*time.Second)
	got, err := collect(t, s.client.Watch(ctx, jobs.NewID(time.Now()), 0))
	if !errors.Is(err, jobs.ErrNotFound) || len(got) != 0 {
		t.Fatalf("got %v, %v; want only jobs.ErrNotFound", seqs(got), err)
	}
}

// storeHistory stores events 1..n of a new job, the last one succeeded,
// as the services do, and returns the job id and the events' stream
// sequences.
func storeHistory(t *testing.T, s *system, n int) (string, []uint64) {
	t.Helper()
	ctx := testContext(t, 10*time.Second)
	now := time.Now()
	ev := jobs.Event{JobID: jobs.NewID(now), Type: "x", Seq: 1, Kind: jobs.KindQueued, Status: jobs.StatusQueued, Time: now, CreatedAt: &now}
	var streamSeqs []uint64
	var last uint64
	for i := 1; i <= n; i++ {
		if i > 1 {
			ev = ev.Next(jobs.KindProgress, time.Now())
			ev.Status, ev.Percent = jobs.StatusRunning, jobs.Percentage(float64(i*100/n))
		}
		if i == n {
			ev.Kind, ev.Status = jobs.KindSucceeded, jobs.StatusSucceeded
		}
		seq, err := jobs.PublishEvent(ctx, s.js, ev, last)
		if err != nil {
			t.Fatal(err)
		}
		streamSeqs = append(streamSeqs, seq)
		last = seq
	}
	return ev.JobID, streamSeqs
}

// Events that are no longer stored cannot be replayed: a watch starts at
// the oldest stored event (a full snapshot), and a hole in the history
// is reported as ErrGap, never skipped.
func TestWatchTruncatedHistory(t *testing.T) {
	t.Parallel()
	s := startBare(t)
	ctx := testContext(t, 10*time.Second)
	id, streamSeqs := storeHistory(t, s, 6)
	events, err := s.js.Stream(ctx, jobs.Stream)
	if err != nil {
		t.Fatal(err)
	}

	// Events 1 and 2 aged out.
	for _, i := range []int{0, 1} {
		if err := events.DeleteMsg(ctx, streamSeqs[i]); err != nil {
			t.Fatal(err)
		}
	}
	for _, after := range []uint64{0, 1} {
		got, err := collect(t, s.client.Watch(ctx, id, after))
		if err != nil {
			t.Fatalf("after %d: %v", after, err)
		}
		checkRun(t, got, 3, 6)
	}
	got, err := collect(t, s.client.Watch(ctx, id, 3))
	if err != nil {
		t.Fatal(err)
	}
	checkRun(t, got, 4, 6)

	// Event 4 is missing in the middle.
	if err := events.DeleteMsg(ctx, streamSeqs[3]); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		after uint64
		want  []uint64
	}{{0, []uint64{3}}, {2, []uint64{3}}, {3, nil}} {
		got, err := collect(t, s.client.Watch(ctx, id, tc.after))
		if !errors.Is(err, jobclient.ErrGap) {
			t.Errorf("after %d: err = %v, want ErrGap", tc.after, err)
		}
		if g := seqs(got); len(g) != len(tc.want) || (len(g) > 0 && g[0] != tc.want[0]) {
			t.Errorf("after %d: seqs %v before the error, want %v", tc.after, g, tc.want)
		}
	}
	got, err = collect(t, s.client.Watch(ctx, id, 4))
	if err != nil {
		t.Fatal(err)
	}
	checkRun(t, got, 5, 6)
}

// A watch creates no consumer on the server, and leaving it early (break,
// or its context ending) leaves no goroutine behind.
func TestWatchStopLeaksNothing(t *testing.T) {
	// Not parallel: goleak looks at every goroutine of the process.
	s := startBare(t)
	ctx := testContext(t, 20*time.Second)
	registerType(t, s, jobs.TypeInfo{Type: "x"})
	queued, err := s.client.Submit(ctx, "x", nil) // no runner: stays queued
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.Get(ctx, queued.JobID); err != nil { // warm up the connection
		t.Fatal(err)
	}
	events, err := s.js.Stream(ctx, jobs.Stream)
	if err != nil {
		t.Fatal(err)
	}
	consumers := func() int { return natstest.Consumers(t, events) }
	running := goleak.IgnoreCurrent()

	// break after the first event
	var n int
	for ev, err := range s.client.Watch(ctx, queued.JobID, 0) {
		if err != nil || ev.Seq != 1 {
			t.Fatalf("got %+v, %v; want the queued event", ev, err)
		}
		if c := consumers(); c != 0 {
			t.Fatalf("%d consumers while watching, want none: history is read by direct gets", c)
		}
		n++
		break
	}
	if n != 1 {
		t.Fatalf("%d events, want 1", n)
	}
	goleak.VerifyNone(t, running)
	if c := consumers(); c != 0 {
		t.Fatalf("%d consumers left after break", c)
	}

	// the context ends while waiting for the next event
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	got, err := collect(t, s.client.Watch(wctx, queued.JobID, 0))
	if !errors.Is(err, context.DeadlineExceeded) || len(got) != 1 {
		t.Fatalf("got %v, %v; want seq 1 then context.DeadlineExceeded", seqs(got), err)
	}
	goleak.VerifyNone(t, running)
	if c := consumers(); c != 0 {
		t.Fatalf("%d consumers left after the context ended", c)
	}

	// the context has already ended
	got, err = collect(t, s.client.Watch(wctx, queued.JobID, 0))
	if !errors.Is(err, context.DeadlineExceeded) || len(got) != 0 {
		t.Fatalf("got %v, %v; want only context.DeadlineExceeded", seqs(got), err)
	}
	goleak.VerifyNone(t, running)
}
