package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/natstest"
	"github.com/jobwire/jobwire/internal/testsys"
	"github.com/jobwire/jobwire/shared/jobs"
)

// A delayed job is "scheduled" (its first event, watchable) until it is
// due, then runs like any job: never before its run_at.
func TestDelayedJobRunsWhenDue(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t)
	snap := sys.SubmitBody(t, `{"type":"demo","input":{"steps":2,"step_ms":1},"delay":"800ms"}`)
	if snap.Status != jobs.StatusScheduled || snap.RunAt == nil || snap.Seq != 1 {
		t.Fatalf("a delayed job's answer: %+v", snap)
	}
	if got, _ := sys.Get(t, snap.ID); got.Status != jobs.StatusScheduled {
		t.Fatalf("GET before it is due: %s", got.Status)
	}
	ws := &contractWS{dialWS(t, sys), newContract(t)} // every event checked against the schemas
	ws.send(`{"op":"watch","job_id":"`+snap.ID+`","after_seq":0}`, true)
	evs := ws.events(snap.ID)
	kinds := testsys.Kinds(evs)
	if len(evs) < 4 || evs[0].Kind != jobs.KindScheduled || evs[1].Kind != jobs.KindQueued || evs[len(evs)-1].Kind != jobs.KindSucceeded {
		t.Fatalf("events: %v", kinds)
	}
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("seqs not 1, 2, 3 …: %v", kinds)
		}
	}
	done, _ := sys.Get(t, snap.ID)
	if done.StartedAt.Before(*snap.RunAt) {
		t.Fatalf("started %v, before its run_at %v", done.StartedAt, snap.RunAt)
	}
	t.Logf("due %v, started %v later", snap.RunAt.Format(time.RFC3339Nano), done.StartedAt.Sub(*snap.RunAt))
}

// A scheduled job canceled before it is due never runs.
func TestScheduledJobCanceledNeverRuns(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t)
	snap := sys.SubmitBody(t, `{"type":"demo","input":{"steps":1,"step_ms":1},"delay":"700ms"}`)
	if code, got := sys.Cancel(t, snap.ID, ""); code != http.StatusAccepted || got.Status != jobs.StatusCanceled {
		t.Fatalf("cancel: %d %+v", code, got)
	}
	// Past its due time (bounded wait): still canceled, nothing stored after.
	time.Sleep(1500 * time.Millisecond)
	got, _ := sys.Get(t, snap.ID)
	if got.Status != jobs.StatusCanceled || got.Seq != 2 {
		t.Fatalf("after its due time: %s seq %d", got.Status, got.Seq)
	}
}

// A job not started by its expires_at ends canceled with code "expired".
func TestJobExpiresUnstarted(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner())
	exp := time.Now().Add(600 * time.Millisecond).UTC().Format(time.RFC3339Nano)
	queued := sys.SubmitBody(t, `{"type":"demo","input":{"steps":1},"expires_at":"`+exp+`"}`)
	delayed := sys.SubmitBody(t, `{"type":"demo","input":{"steps":1},"delay":"200ms","expires_at":"`+exp+`"}`)
	for _, id := range []string{queued.ID, delayed.ID} {
		got := sys.WaitStatus(t, id, jobs.StatusCanceled, 10*time.Second)
		if got.Error == nil || got.Error.Code != "expired" {
			t.Fatalf("job %s: %+v", id, got)
		}
	}
}

// Times, delays and priorities are checked at submit.
func TestSubmitTimingIsChecked(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner())
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	soon := time.Now().Add(10 * time.Minute).UTC().Format(time.RFC3339) // the test system keeps events for an hour
	for _, c := range []struct{ extra, want string }{
		{`"run_at":"tomorrow"`, "RFC 3339"},
		{`"run_at":"` + past + `"`, "in the past"},
		{`"delay":"-5s"`, "positive duration"},
		{`"delay":"5 parsecs"`, "positive duration"},
		{`"delay":"1s","run_at":"` + soon + `"`, "not both"},
		{`"delay":"100000h"`, "at most"},
		{`"expires_at":"` + past + `"`, "not in the future"},
		{`"delay":"20m","expires_at":"` + soon + `"`, "after the job is due"},
		{`"priority":7`, "1 (high), 2 (normal) or 3 (low)"},
		{`"priority":"high"`, ""},
	} {
		var e struct{ Error jobs.Error }
		resp := sys.Do(t, "POST", "/api/jobs", "application/json", `{"type":"demo","input":{"steps":1},`+c.extra+`}`, nil, &e)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(e.Error.Message, c.want) {
			t.Errorf("%s: %d %+v, want 400 saying %q", c.extra, resp.StatusCode, e.Error, c.want)
		}
	}
	var list struct{ Jobs []jobs.Snapshot }
	sys.Do(t, "GET", "/api/jobs", "", "", nil, &list)
	if len(list.Jobs) != 0 {
		t.Fatalf("refused submits stored %d jobs", len(list.Jobs))
	}
}

// A recurring schedule makes a job per firing (linked by schedule_id,
// listed), pauses, resumes and is deleted; only its owner (and admins)
// see it.
func TestRecurringSchedule(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t)
	alice, bob := sys.As(testsys.Token(t, "alice", false, time.Hour)), sys.As(testsys.Token(t, "bob", false, time.Hour))
	admin := sys.As(testsys.Token(t, "ops", true, time.Hour))
	var sc struct {
		ID        string     `json:"id"`
		Every     string     `json:"every"`
		Paused    bool       `json:"paused"`
		NextRunAt *time.Time `json:"next_run_at"`
	}
	k := newContract(t)
	resp, b := call(t, alice, "POST", "/api/schedules", "application/json", `{"type":"demo","input":{"steps":1,"step_ms":1},"every":"1s","priority":2}`, nil)
	k.checkResponse("/api/schedules", "POST", resp, b)
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &sc) != nil || sc.NextRunAt == nil || sc.Every != "1s" {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	scheduled := func(who *testsys.System) []jobs.Snapshot {
		var page struct{ Jobs []jobs.Snapshot }
		who.Do(t, "GET", "/api/jobs?limit=500", "", "", nil, &page)
		var out []jobs.Snapshot
		for _, j := range page.Jobs {
			if j.ScheduleID == sc.ID {
				out = append(out, j)
			}
		}
		return out
	}
	waitUntil(t, 15*time.Second, "two jobs of the schedule, run", func() bool {
		n := 0
		for _, j := range scheduled(alice) {
			if j.Status == jobs.StatusSucceeded && j.Priority == jobs.PriorityNormal {
				n++
			}
		}
		return n >= 2
	})
	// Bob sees neither the schedule nor its jobs; an admin sees both.
	if r, _ := call(t, bob, "GET", "/api/schedules/"+sc.ID, "", "", nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("bob GET schedule: %d", r.StatusCode)
	}
	var list struct{ Schedules []struct{ ID string } }
	bob.Do(t, "GET", "/api/schedules", "", "", nil, &list)
	if len(list.Schedules) != 0 || len(scheduled(bob)) != 0 {
		t.Errorf("bob lists %d schedules, %d of its jobs", len(list.Schedules), len(scheduled(bob)))
	}
	for _, path := range []string{"/pause", "/resume"} {
		if r, _ := call(t, bob, "POST", "/api/schedules/"+sc.ID+path, "", "", nil); r.StatusCode != http.StatusNotFound {
			t.Errorf("bob %s: %d", path, r.StatusCode)
		}
	}
	if r, _ := call(t, bob, "DELETE", "/api/schedules/"+sc.ID, "", "", nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("bob DELETE: %d", r.StatusCode)
	}
	admin.Do(t, "GET", "/api/schedules", "", "", nil, &list)
	if len(list.Schedules) != 1 || list.Schedules[0].ID != sc.ID {
		t.Errorf("admin lists %+v", list.Schedules)
	}

	// Paused: no more jobs (a firing already on its way may still land).
	resp, b = call(t, alice, "POST", "/api/schedules/"+sc.ID+"/pause", "", "", nil)
	sc.NextRunAt = nil
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &sc) != nil || !sc.Paused || sc.NextRunAt != nil {
		t.Fatalf("pause: %d %s", resp.StatusCode, b)
	}
	time.Sleep(1500 * time.Millisecond)
	before := len(scheduled(alice))
	time.Sleep(2500 * time.Millisecond)
	if after := len(scheduled(alice)); after != before {
		t.Fatalf("paused, the schedule made %d more jobs", after-before)
	}
	resp, _ = call(t, alice, "POST", "/api/schedules/"+sc.ID+"/resume", "", "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("resume: %d", resp.StatusCode)
	}
	waitUntil(t, 15*time.Second, "a job after resuming", func() bool { return len(scheduled(alice)) > before })

	if r, _ := call(t, alice, "DELETE", "/api/schedules/"+sc.ID, "", "", nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d", r.StatusCode)
	}
	if r, _ := call(t, alice, "GET", "/api/schedules/"+sc.ID, "", "", nil); r.StatusCode != http.StatusNotFound {
		t.Fatalf("GET after delete: %d", r.StatusCode)
	}
}

// Schedules are checked when made.
func TestScheduleIsChecked(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner())
	for _, c := range []struct{ body, want string }{
		{`{"type":"demo","input":{"steps":1}}`, `"cron" or "every"`},
		{`{"type":"demo","input":{"steps":1},"every":"1s","cron":"* * * * * *"}`, `"cron" or "every"`},
		{`{"type":"demo","input":{"steps":1},"every":"500ms"}`, "at least 1s"},
		{`{"type":"demo","input":{"steps":1},"cron":"*/5 * * * *"}`, "six fields"},
		{`{"type":"demo","input":{"steps":1},"cron":"0 0 9 * * *","time_zone":"Mars/Olympus"}`, "IANA time zone"},
		{`{"type":"demo","input":{"steps":1},"every":"1m","time_zone":"Europe/Berlin"}`, `applies to "cron" only`},
		{`{"type":"demo","input":{"steps":1},"every":"1m","priority":0.5}`, ""},
		{`{"type":"demo","input":{"steps":1},"every":"1m","priority":4}`, "priority"},
		{`{"type":"demo","input":{"steps":0},"every":"1m"}`, "input"},
	} {
		var e struct{ Error jobs.Error }
		resp := sys.Do(t, "POST", "/api/schedules", "application/json", c.body, nil, &e)
		if resp.StatusCode/100 != 4 || !strings.Contains(e.Error.Message, c.want) {
			t.Errorf("%s: %d %+v, want 4xx saying %q", c.body, resp.StatusCode, e.Error, c.want)
		}
	}
	var list struct{ Schedules []any }
	sys.Do(t, "GET", "/api/schedules", "", "", nil, &list)
	if len(list.Schedules) != 0 {
		t.Fatalf("refused schedules were stored: %v", list.Schedules)
	}
}

// A schedule keeps firing across the loss of the gateway that handled its
// firings (another one takes them over: the timers consumer is shared)
// and a restart of NATS (the server keeps the schedule); each firing
// makes one job.
func TestScheduleSurvivesRestarts(t *testing.T) {
	t.Parallel()
	ns := natstest.NewRestartable(t)
	token := testsys.Token(t, "alice", false, time.Hour)
	first := testsys.StartOn(t, ns.Server()).As(token)
	second := testsys.StartOn(t, ns.Server()).As(token)
	var sc struct{ ID string }
	if r := first.Do(t, "POST", "/api/schedules", "application/json", `{"type":"demo","input":{"steps":1,"step_ms":1},"every":"1s"}`, nil, &sc); r.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d", r.StatusCode)
	}
	made := func() map[string]bool {
		var page struct{ Jobs []jobs.Snapshot }
		second.Do(t, "GET", "/api/jobs?limit=500", "", "", nil, &page)
		ids := map[string]bool{}
		for _, j := range page.Jobs {
			if j.ScheduleID == sc.ID {
				ids[j.ID] = true
			}
		}
		return ids
	}
	start := time.Now()
	waitUntil(t, 15*time.Second, "two firings", func() bool { return len(made()) >= 2 })
	first.Stop() // a gateway (and a runner) that may have handled them
	n := len(made())
	waitUntil(t, 15*time.Second, "firings after the first gateway stopped", func() bool { return len(made()) >= n+2 })
	ns.Restart()
	n = len(made())
	waitUntil(t, 30*time.Second, "firings after NATS restarted", func() bool { return len(made()) >= n+2 })
	// One job per firing: at most one a second, and one catch-up firing
	// for the time NATS was down.
	if got, most := len(made()), int(time.Since(start)/time.Second)+2; got > most {
		t.Fatalf("%d jobs in %v: more than one per firing", got, time.Since(start))
	}
	if r, _ := call(t, second, "DELETE", "/api/schedules/"+sc.ID, "", "", nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d", r.StatusCode)
	}
}
