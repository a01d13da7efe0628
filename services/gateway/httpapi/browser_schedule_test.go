package httpapi_test

import (
	"context"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/jobwire/jobwire/internal/testsys"
	"github.com/jobwire/jobwire/shared/jobs"
)

// Delayed jobs, deadlines, priorities and recurring schedules in the
// pages, driven in a real Chromium against a whole running system.

// timingState is what the pages show of a job's timing and of schedules.
type timingState struct {
	Path        string        `json:"path"`
	Status      string        `json:"status"`     // the job page's status
	Scheduled   string        `json:"scheduled"`  // the job page's "Scheduled for" line, while shown
	Countdown   string        `json:"countdown"`  // its visible countdown
	Spoken      string        `json:"spoken"`     // its aria-live sentence
	Priority    string        `json:"priority"`   // the job page's priority
	Expires     string        `json:"expires"`    // the job page's deadline, while shown
	Schedule    string        `json:"schedule"`   // the job page's schedule link's href, while shown
	Buttons     []string      `json:"buttons"`    // the job page's visible action buttons
	Rows        []timingRow   `json:"rows"`       // the jobs table
	Schedules   []scheduleRow `json:"schedules"`  // the schedules table
	Note        string        `json:"note"`       // the schedules page's note
	Types       []string      `json:"types"`      // the schedules form's types
	FormError   string        `json:"form_error"` // the schedules form's error, while shown
	ActiveClass string        `json:"active_class"`
}

type timingRow struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Prio   string `json:"prio"` // the priority mark, while shown
	Time   string `json:"time"`
}

type scheduleRow struct {
	ID      string   `json:"id"`
	Type    string   `json:"type"`
	Repeats string   `json:"repeats"`
	Next    string   `json:"next"`
	State   string   `json:"state"`
	Buttons []string `json:"buttons"` // visible buttons' texts
}

const timingStateJS = `(() => {
	const el = (id) => document.getElementById(id);
	const text = (id) => el(id) ? el(id).textContent.trim() : "";
	const shown = (id) => !!el(id) && el(id).getClientRects().length > 0;
	const vis = (e) => !!e && e.getClientRects().length > 0;
	const q = (root, sel) => root.querySelector(sel);
	return {
		path: location.pathname, status: text("status"),
		scheduled: shown("scheduled") ? (text("scheduled-label") + " " + text("scheduled")).replace(/\s+/g, " ") : "",
		countdown: text("countdown"), spoken: text("countdown-sr"), priority: text("priority"),
		expires: shown("expires") ? text("expires") : "",
		schedule: shown("schedule") && q(el("schedule"), "a") ? q(el("schedule"), "a").getAttribute("href") : "",
		buttons: ["cancel", "cancel-yes", "cancel-no", "retry"].filter(shown),
		rows: [...document.querySelectorAll("#jobs tr[data-id]")].map((tr) => ({
			id: tr.dataset.id, status: q(tr, ".status").textContent,
			prio: vis(q(tr, ".prio")) ? q(tr, ".prio").textContent : "", time: q(tr, ".elapsed").textContent })),
		schedules: [...document.querySelectorAll("#schedules tr[data-id]")].map((tr) => ({
			id: tr.dataset.id, type: q(tr, ".type").textContent, repeats: q(tr, ".repeats").textContent,
			next: q(tr, ".next").textContent.trim(), state: q(tr, ".state").textContent,
			buttons: [...tr.querySelectorAll("button")].filter(vis).map((b) => b.textContent) })),
		note: text("schedules-note"),
		types: el("schedule-type") ? [...el("schedule-type").options].map((o) => o.value) : [],
		form_error: shown("schedule-error") ? text("schedule-error") : "",
		active_class: document.activeElement ? document.activeElement.className : "",
	};
})()`

// waitTiming reads the page's timingState until done accepts it, and fails
// the test after eventWait.
func waitTiming(t *testing.T, ctx context.Context, what string, done func(timingState) bool) timingState {
	t.Helper()
	return waitJS(t, ctx, what, timingStateJS, done)
}

// inSeconds matches a countdown such as "in 42 s" or "in 1.5 s".
var inSeconds = regexp.MustCompile(`^in [0-9.]+ s$`)

func (p timingState) row(id string) (timingRow, bool) {
	i := slices.IndexFunc(p.Rows, func(r timingRow) bool { return r.ID == id })
	if i < 0 {
		return timingRow{}, false
	}
	return p.Rows[i], true
}

func (p timingState) schedule(id string) (scheduleRow, bool) {
	i := slices.IndexFunc(p.Schedules, func(r scheduleRow) bool { return r.ID == id })
	if i < 0 {
		return scheduleRow{}, false
	}
	return p.Schedules[i], true
}

// TestBrowserQueueDelayedJob queues a job 2 s ahead from the form's
// "Timing and priority": its page says when it is due and counts down,
// then shows it run to its end.
func TestBrowserQueueDelayedJob(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	sys := testsys.Start(t)
	shareSession(t, ctx, sys)

	navigate(t, ctx, sys.URL+"/")
	if err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.ID("field-steps")),
		chromedp.SetValue(chromedp.ID("field-steps"), "3"),
		chromedp.SetValue(chromedp.ID("field-step_ms"), "50"),
		chromedp.Click(chromedp.CSS("#timing summary")),
		chromedp.WaitVisible(chromedp.ID("delay")),
		chromedp.SendKeys(chromedp.ID("delay"), "2s"),
	); err != nil {
		t.Fatal(err)
	}
	click(t, ctx, "queue-button")

	p := waitTiming(t, ctx, "the job page, scheduled", func(p timingState) bool {
		return strings.HasPrefix(p.Path, "/jobs/") && p.Status == "scheduled" && p.Scheduled != "" && inSeconds.MatchString(p.Countdown)
	})
	id := strings.TrimPrefix(p.Path, "/jobs/")
	if !strings.HasPrefix(p.Scheduled, "Scheduled for ") {
		t.Errorf("scheduled line = %q; want \"Scheduled for <time> · in N s\"", p.Scheduled)
	}
	if p.Priority != "normal" {
		t.Errorf("priority = %q; want normal", p.Priority)
	}
	if p.Spoken != "Due in less than a minute." {
		t.Errorf("the live sentence = %q; want %q", p.Spoken, "Due in less than a minute.")
	}
	if !slices.Contains(p.Buttons, "cancel") {
		t.Errorf("buttons of a scheduled job: %q; want cancel", p.Buttons)
	}
	screenshot(t, ctx, "job-scheduled.png")
	snap, _ := sys.Get(t, id)
	if snap.RunAt == nil || jobs.PriorityOf(snap.Priority) != jobs.PriorityNormal || snap.CreatedAt == nil {
		t.Fatalf("the job as the API has it: %+v; want run_at set and normal priority", snap)
	}
	if d := snap.RunAt.Sub(*snap.CreatedAt); d < 1500*time.Millisecond || d > 3*time.Second {
		t.Errorf("run_at is %v after created_at; want about 2 s (the delay typed)", d)
	}

	waitPage(t, ctx, "the delayed job to succeed", func(p pageState) bool {
		return p.Status == "succeeded" && p.Percent == "100%"
	})
	if p := waitTiming(t, ctx, "the page after the end", func(timingState) bool { return true }); p.Scheduled != "" {
		t.Errorf("the page still shows %q once the job has run", p.Scheduled)
	}
	if snap, _ := sys.Get(t, id); snap.StartedAt == nil || snap.StartedAt.Before(*snap.RunAt) {
		t.Errorf("the job started at %v; want not before its run_at %v", snap.StartedAt, snap.RunAt)
	}
}

// TestBrowserQueueHighPriority queues a job with high priority from the
// form: its page says so, and it runs to its end.
func TestBrowserQueueHighPriority(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	sys := testsys.Start(t)
	shareSession(t, ctx, sys)

	navigate(t, ctx, sys.URL+"/")
	if err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.ID("field-steps")),
		chromedp.SetValue(chromedp.ID("field-steps"), "2"),
		chromedp.SetValue(chromedp.ID("field-step_ms"), "10"),
		chromedp.Click(chromedp.CSS("#timing summary")),
		chromedp.WaitVisible(chromedp.ID("priority")),
	); err != nil {
		t.Fatal(err)
	}
	selectOption(t, ctx, "priority", "1")
	click(t, ctx, "queue-button")
	p := waitTiming(t, ctx, "the job page, high priority", func(p timingState) bool {
		return strings.HasPrefix(p.Path, "/jobs/") && p.Priority == "high"
	})
	id := strings.TrimPrefix(p.Path, "/jobs/")
	if snap, _ := sys.Get(t, id); snap.Priority != jobs.PriorityHigh || snap.RunAt != nil {
		t.Errorf("the job as the API has it: priority %d, run_at %v; want 1 and none", snap.Priority, snap.RunAt)
	}
	waitPage(t, ctx, "the high-priority job to succeed", func(p pageState) bool {
		return p.Status == "succeeded" && p.Percent == "100%"
	})
}

// submitScheduled submits a demo job due in a minute with the extra
// request fields extra (JSON members, with a leading comma).
func submitScheduled(t *testing.T, sys *testsys.System, extra string) string {
	t.Helper()
	var snap jobs.Snapshot
	resp := sys.Do(t, "POST", "/api/jobs", "application/json", `{"type":"demo","input":{"steps":1,"step_ms":1},"delay":"60s"`+extra+`}`, nil, &snap)
	if resp.StatusCode != http.StatusAccepted || snap.Status != jobs.StatusScheduled {
		t.Fatalf("submit with a delay: %d %+v; want 202 and status scheduled", resp.StatusCode, snap)
	}
	return snap.ID
}

// TestBrowserScheduledJobsInTable lists jobs due in a minute in the jobs
// table: the scheduled chip (AA contrast in both schemes), the countdown,
// the low-priority mark, and the status filter.
func TestBrowserScheduledJobsInTable(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	sys := testsys.Start(t)
	id := submitScheduled(t, sys, "")
	low := submitScheduled(t, sys, `,"priority":3`)
	other := sys.Submit(t, "demo", `{"steps":1,"step_ms":1}`).ID
	sys.WaitStatus(t, other, jobs.StatusSucceeded, 20*time.Second)
	shareSession(t, ctx, sys)

	navigate(t, ctx, sys.URL+"/")
	p := waitTiming(t, ctx, "the scheduled jobs in the table", func(p timingState) bool {
		r, ok := p.row(id)
		_, ok2 := p.row(other)
		return ok && ok2 && r.Status == "scheduled" && inSeconds.MatchString(r.Time)
	})
	if r, ok := p.row(low); !ok || r.Status != "scheduled" || r.Prio != "↓ low" {
		t.Errorf("the low-priority job's row = %+v (listed %v); want scheduled, marked ↓ low", r, ok)
	}
	for _, j := range []string{id, other} {
		if r, _ := p.row(j); r.Prio != "" {
			t.Errorf("priority mark of a normal job = %q; want none", r.Prio)
		}
	}
	for _, scheme := range []string{"light", "dark"} {
		if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		}); err != nil {
			t.Fatal(err)
		}
		if bad, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](contrastJS)); err != nil || len(bad) > 0 {
			t.Errorf("jobs table, %s scheme: texts below AA contrast (%v):\n%s", scheme, err, strings.Join(bad, "\n"))
		}
		screenshot(t, ctx, "jobs-scheduled-"+scheme+".png")
	}
	selectOption(t, ctx, "filter-status", "scheduled")
	p = waitTiming(t, ctx, "only the scheduled jobs", func(p timingState) bool {
		_, ok := p.row(other)
		return !ok && len(p.Rows) >= 1
	})
	if got := rowsOf(p); !slices.Contains(got, id) || len(got) > 2 {
		t.Errorf("rows with the scheduled filter: %q; want the scheduled jobs only", got)
	}
	sys.Cancel(t, id, "")
	sys.Cancel(t, low, "")
}

func rowsOf(p timingState) []string {
	ids := make([]string, len(p.Rows))
	for i, r := range p.Rows {
		ids[i] = r.ID
	}
	return ids
}

// TestBrowserCancelScheduledJob opens a job due in a minute, with low
// priority and a deadline: its page counts down and says both; it is
// canceled from there before it ever starts.
func TestBrowserCancelScheduledJob(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	sys := testsys.Start(t)
	expires := time.Now().Add(10 * time.Minute).UTC().Format(time.RFC3339)
	id := submitScheduled(t, sys, `,"priority":3,"expires_at":"`+expires+`"`)
	shareSession(t, ctx, sys)

	navigate(t, ctx, sys.URL+"/jobs/"+id)
	p := waitTiming(t, ctx, "the job page, scheduled", func(p timingState) bool {
		return p.Status == "scheduled" && inSeconds.MatchString(p.Countdown) && p.Expires != "" && slices.Contains(p.Buttons, "cancel")
	})
	if p.Priority != "low" || !strings.HasPrefix(p.Expires, "must start by ") || p.Schedule != "" {
		t.Errorf("priority %q, deadline %q, schedule %q; want low, \"must start by …\" and no schedule", p.Priority, p.Expires, p.Schedule)
	}
	if p.Spoken != "Due in less than a minute." && p.Spoken != "Due in about 1 minute." {
		t.Errorf("the live sentence = %q; want it to say about a minute", p.Spoken)
	}
	if bad, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](contrastJS)); err != nil || len(bad) > 0 {
		t.Errorf("job page: texts below AA contrast (%v):\n%s", err, strings.Join(bad, "\n"))
	}
	click(t, ctx, "cancel")
	click(t, ctx, "cancel-yes")
	p = waitTiming(t, ctx, "the job canceled", func(p timingState) bool {
		return p.Status == "canceled" && slices.Equal(p.Buttons, []string{"retry"})
	})
	if p.Scheduled != "" {
		t.Errorf("a canceled job's page still shows %q", p.Scheduled)
	}
	if snap, _ := sys.Get(t, id); snap.Status != jobs.StatusCanceled || snap.StartedAt != nil {
		t.Errorf("the job as the API has it: %s, started %v; want canceled, never started", snap.Status, snap.StartedAt)
	}
}

// scheduleJobs counts the caller's jobs that schedule id made.
func scheduleJobs(t *testing.T, sys *testsys.System, id string) int {
	t.Helper()
	var page struct{ Jobs []jobs.Snapshot }
	sys.Do(t, "GET", "/api/jobs?limit=500", "", "", nil, &page)
	n := 0
	for _, j := range page.Jobs {
		if j.ScheduleID == id {
			n++
		}
	}
	return n
}

// TestBrowserSchedules makes a schedule that fires every second from the
// schedules page, sees it listed and its jobs made, pauses it (no jobs
// after that), and deletes it after the inline confirmation.
func TestBrowserSchedules(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	sys := testsys.Start(t)
	shareSession(t, ctx, sys)

	navigate(t, ctx, sys.URL+"/schedules")
	waitTiming(t, ctx, "the empty list and the types", func(p timingState) bool {
		return strings.Contains(p.Note, "No schedules yet") && slices.Contains(p.Types, "demo")
	})
	zone, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("schedule-zone").value`))
	if err != nil || zone == "" {
		t.Errorf("time zone field = %q (%v); want the browser's zone", zone, err)
	}
	selectOption(t, ctx, "schedule-type", "demo")
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("schedule-input"), `{"steps": 1, "step_ms": 1}`),
		chromedp.SetValue(chromedp.ID("schedule-every"), "soon"),
	); err != nil {
		t.Fatal(err)
	}
	click(t, ctx, "schedule-create")
	if p := waitTiming(t, ctx, "the server's refusal of \"every soon\"", func(p timingState) bool { return p.FormError != "" }); len(p.Schedules) != 0 {
		t.Errorf("schedules listed after a refused create: %+v", p.Schedules)
	}
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.ID("schedule-every"), "1s")); err != nil {
		t.Fatal(err)
	}
	click(t, ctx, "schedule-create")
	p := waitTiming(t, ctx, "the schedule listed with its next run", func(p timingState) bool {
		return len(p.Schedules) == 1 && p.Schedules[0].State == "active" && strings.Contains(p.Schedules[0].Next, " · ")
	})
	s := p.Schedules[0]
	if s.Type != "demo" || s.Repeats != "every 1s" || !slices.Equal(s.Buttons, []string{"Pause", "Delete"}) {
		t.Errorf("schedule row = %+v; want type demo, every 1s, buttons Pause and Delete", s)
	}
	screenshot(t, ctx, "schedules.png")
	for _, scheme := range []string{"dark", "light"} {
		if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		}); err != nil {
			t.Fatal(err)
		}
		if bad, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](contrastJS)); err != nil || len(bad) > 0 {
			t.Errorf("schedules page, %s scheme: texts below AA contrast (%v):\n%s", scheme, err, strings.Join(bad, "\n"))
		}
	}

	// Its jobs appear in the caller's list.
	deadline := time.Now().Add(eventWait)
	for scheduleJobs(t, sys, s.ID) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than 2 jobs with schedule_id %s listed within %v", s.ID, eventWait)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Pause with the keyboard: the list's refreshes keep the focus.
	tabTo(t, ctx, "the pause button", `e.matches("#schedule-`+s.ID+` button.pause")`)
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	waitTiming(t, ctx, "the schedule paused", func(p timingState) bool {
		r, ok := p.schedule(s.ID)
		return ok && r.State == "paused" && slices.Equal(r.Buttons, []string{"Resume", "Delete"})
	})
	var got struct {
		Paused bool `json:"paused"`
	}
	if resp := sys.Do(t, "GET", "/api/schedules/"+s.ID, "", "", nil, &got); resp.StatusCode != http.StatusOK || !got.Paused {
		t.Errorf("GET /api/schedules/%s after pausing: %d, paused %v; want 200, paused", s.ID, resp.StatusCode, got.Paused)
	}
	// No new jobs once paused: the count stays put for 2.5 s (jobs made
	// just before the pause may still be getting listed at first).
	const still = 2500 * time.Millisecond
	n, since := scheduleJobs(t, sys, s.ID), time.Now()
	deadline = time.Now().Add(10 * time.Second)
	for time.Since(since) < still {
		if time.Now().After(deadline) {
			t.Fatalf("the paused schedule's job count never stayed put for %v within 10 s (now %d)", still, n)
		}
		time.Sleep(100 * time.Millisecond)
		if m := scheduleJobs(t, sys, s.ID); m != n {
			n, since = m, time.Now()
		}
	}
	t.Logf("schedule %s made %d jobs", s.ID, n)

	// A job it made links back to it.
	var page struct{ Jobs []jobs.Snapshot }
	sys.Do(t, "GET", "/api/jobs?limit=500", "", "", nil, &page)
	i := slices.IndexFunc(page.Jobs, func(j jobs.Snapshot) bool { return j.ScheduleID == s.ID })
	if i < 0 {
		t.Fatal("no job with the schedule's id listed")
	}
	navigate(t, ctx, sys.URL+"/jobs/"+page.Jobs[i].ID)
	waitTiming(t, ctx, "the link to the schedule", func(p timingState) bool { return p.Schedule == "/schedules#schedule-"+s.ID })

	// Narrow screens.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844)); err != nil {
		t.Fatal(err)
	}
	navigate(t, ctx, sys.URL+"/schedules#schedule-"+s.ID)
	waitTiming(t, ctx, "the paused schedule", func(p timingState) bool { r, ok := p.schedule(s.ID); return ok && r.State == "paused" })
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth - document.documentElement.clientWidth`)); err != nil || n > 0 {
		t.Errorf("the schedules page is %d px wider than a 390 px screen (%v)", n, err)
	}
	screenshot(t, ctx, "schedules-narrow.png")

	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#schedule-`+s.ID+` button.delete`))); err != nil {
		t.Fatal(err)
	}
	p = waitTiming(t, ctx, "the delete confirmation", func(p timingState) bool {
		r, ok := p.schedule(s.ID)
		return ok && slices.Equal(r.Buttons, []string{"Delete", "Keep"})
	})
	if !strings.Contains(p.ActiveClass, "delete-no") {
		t.Errorf("focus is on %q once the confirmation opens; want the safe choice, Keep", p.ActiveClass)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#schedule-`+s.ID+` button.delete-yes`))); err != nil {
		t.Fatal(err)
	}
	waitTiming(t, ctx, "the schedule gone", func(p timingState) bool {
		_, ok := p.schedule(s.ID)
		return !ok && strings.Contains(p.Note, "No schedules yet")
	})
	if resp, _ := sys.Call(t, "GET", "/api/schedules/"+s.ID, "", "", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /api/schedules/%s after deleting: %d; want 404", s.ID, resp.StatusCode)
	}
}

// TestBrowserExpiredJob opens a job that no runner starts before its
// deadline: its page ends canceled and says it expired, not started by
// then.
func TestBrowserExpiredJob(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	sys := testsys.Start(t, testsys.WithoutRunner())
	var snap jobs.Snapshot
	expires := time.Now().Add(1500 * time.Millisecond).UTC().Format(time.RFC3339Nano)
	resp := sys.Do(t, "POST", "/api/jobs", "application/json",
		`{"type":"demo","input":{"steps":1,"step_ms":1},"expires_at":"`+expires+`"}`, nil, &snap)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("submit with a deadline: %d %+v; want 202", resp.StatusCode, snap)
	}
	shareSession(t, ctx, sys)

	navigate(t, ctx, sys.URL+"/jobs/"+snap.ID)
	p := waitTiming(t, ctx, "the job expired", func(p timingState) bool {
		return p.Status == "canceled" && strings.HasPrefix(p.Expires, "expired: not started by ")
	})
	if p.Scheduled != "" || slices.Contains(p.Buttons, "cancel") {
		t.Errorf("an expired job's page shows %q and buttons %q; want no schedule line and no cancel", p.Scheduled, p.Buttons)
	}
	if final, _ := sys.Get(t, snap.ID); final.Error == nil || final.Error.Code != "expired" || final.StartedAt != nil {
		t.Errorf("the job as the API has it: %+v; want canceled with error expired, never started", final)
	}
}
