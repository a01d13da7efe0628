package httpapi_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/testsys"
	"github.com/jobwire/jobwire/services/gateway/jobindex"
	"github.com/jobwire/jobwire/services/gateway/jobops"
	"github.com/jobwire/jobwire/shared/jobs"
)

// stats polls GET /api/stats as caller until ok accepts it.
func stats(t *testing.T, caller *testsys.System, what string, ok func(jobops.Stats) bool) jobops.Stats {
	t.Helper()
	var s jobops.Stats
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		s = jobops.Stats{}
		if resp := caller.Do(t, "GET", "/api/stats", "", "", nil, &s); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /api/stats: %d", resp.StatusCode)
		}
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats: want %s, have %+v", what, s)
		}
	}
}

func typeStats(s jobops.Stats, typ string) jobindex.TypeStats {
	for _, ts := range s.Types {
		if ts.Type == typ {
			return ts
		}
	}
	return jobindex.TypeStats{}
}

// GET /api/stats counts the caller's own jobs (an admin's: everyone's,
// with each type's queue and runners), by status and per minute.
func TestStatsCountOwnJobs(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t)
	alice, bob := sys.As(testsys.Token(t, "alice", false, time.Hour)), sys.As(testsys.Token(t, "bob", false, time.Hour))
	admin := sys.As(testsys.Token(t, "ops", true, time.Hour))
	for range 2 {
		alice.WaitStatus(t, alice.Submit(t, "demo", `{"steps":1,"step_ms":0}`).ID, jobs.StatusSucceeded, 20*time.Second)
	}
	long := alice.Submit(t, "demo", `{"steps":1000,"step_ms":10}`)
	alice.WaitStatus(t, long.ID, jobs.StatusRunning, 20*time.Second)
	if code, _ := alice.Cancel(t, long.ID, ""); code != http.StatusAccepted {
		t.Fatalf("cancel: %d", code)
	}
	alice.WaitStatus(t, long.ID, jobs.StatusCanceled, 20*time.Second)
	bob.WaitStatus(t, bob.Submit(t, "demo", `{"steps":1,"step_ms":0}`).ID, jobs.StatusSucceeded, 20*time.Second)

	mine := stats(t, alice, "alice's 2 succeeded and 1 canceled", func(s jobops.Stats) bool {
		c := typeStats(s, "demo").Counts
		return c[jobs.StatusSucceeded] == 2 && c[jobs.StatusCanceled] == 1 && c[jobs.StatusRunning] == 0 && c[jobs.StatusQueued] == 0
	})
	demo := typeStats(mine, "demo")
	if mine.Scope != "mine" || demo.Queue != nil || demo.Runners != nil || len(demo.PerMinute) != 60 {
		t.Fatalf("alice's stats: scope %q, queue %+v, runners %+v, %d minutes", mine.Scope, demo.Queue, demo.Runners, len(demo.PerMinute))
	}
	var ended int64
	for _, m := range demo.PerMinute[58:] { // this minute, or the one before if it just turned
		ended += m.Succeeded + m.Canceled + m.Failed
	}
	if ended != 3 {
		t.Fatalf("alice's jobs ended in the last minutes: %d, want 3", ended)
	}
	stats(t, bob, "bob's 1 succeeded", func(s jobops.Stats) bool {
		c := typeStats(s, "demo").Counts
		return c[jobs.StatusSucceeded] == 1 && c[jobs.StatusCanceled] == 0
	})
	all := stats(t, admin, "every job", func(s jobops.Stats) bool {
		c := typeStats(s, "demo").Counts
		return c[jobs.StatusSucceeded] == 3 && c[jobs.StatusCanceled] == 1
	})
	demo = typeStats(all, "demo")
	if all.Scope != "all" || demo.Queue == nil || demo.Runners == nil || demo.Runners.Count != 1 || demo.Runners.Concurrency != 4 {
		t.Fatalf("the admin's stats: scope %q, queue %+v, runners %+v", all.Scope, demo.Queue, demo.Runners)
	}
	// Both shapes as openapi.json documents them.
	k := newContract(t)
	for _, caller := range []*testsys.System{alice, admin} {
		resp, b := call(t, caller, "GET", "/api/stats", "", "", nil)
		k.checkResponse("/api/stats", "GET", resp, b)
	}
}

// watch_mine feeds every event of the caller's own jobs, from the first
// one stored after the request, and never another owner's.
func TestWatchMineFeedsOnlyOwnJobs(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t)
	alice, bob := sys.As(testsys.Token(t, "alice", false, time.Hour)), sys.As(testsys.Token(t, "bob", false, time.Hour))
	ws := dialWS(t, alice)
	ws.send(`{"op":"watch_mine"}`)
	waitUntil(t, 10*time.Second, "watch_mine subscribes", func() bool { return sys.GW.Live().Stats().Subscriptions == 1 })

	theirs := bob.Submit(t, "demo", `{"steps":3,"step_ms":5}`)
	bob.WaitStatus(t, theirs.ID, jobs.StatusSucceeded, 20*time.Second)
	ours := []string{alice.Submit(t, "demo", `{"steps":3,"step_ms":5}`).ID, alice.Submit(t, "demo", `{"steps":2,"step_ms":5}`).ID}
	last := map[string]uint64{}
	done := map[string]bool{}
	for len(done) < len(ours) {
		m := ws.read()
		if m.Op != "event" || (m.JobID != ours[0] && m.JobID != ours[1]) {
			t.Fatalf("alice's feed got %+v; her jobs are %v, bob's %s", m, ours, theirs.ID)
		}
		if m.Event.Seq != last[m.JobID]+1 {
			t.Fatalf("job %s: seq %d after %d", m.JobID, m.Event.Seq, last[m.JobID])
		}
		last[m.JobID] = m.Event.Seq
		if m.Event.Status.Terminal() {
			done[m.JobID] = true
		}
	}
	ws.send(`{"op":"unwatch_mine"}`)
	waitUntil(t, 10*time.Second, "unwatch_mine unsubscribes", func() bool { return sys.GW.Live().Stats().Subscriptions == 0 })
}
