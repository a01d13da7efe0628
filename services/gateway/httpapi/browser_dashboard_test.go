package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/jobwire/jobwire/internal/testsys"
	"github.com/jobwire/jobwire/services/gateway/httpapi"
	"github.com/jobwire/jobwire/services/runner/worker"
	"github.com/jobwire/jobwire/shared/jobs"
)

// The dashboard's pages: the jobs table, the job page's actions and the
// overview, driven in a real Chromium against a whole running system.

// echoType answers its input; its schema has a string, a boolean and an
// enum, so the queue form makes one field of each.
func echoType() worker.JobType {
	return worker.JobType{
		Name: "echo", Description: "Answers its input.",
		ExampleInput: map[string]any{"text": "hello"},
		InputSchema: `{"type":"object","required":["text"],"additionalProperties":false,"properties":{
			"text":{"type":"string","minLength":1,"maxLength":100,"description":"What to echo."},
			"shout":{"type":"boolean"},
			"mood":{"enum":["calm","loud"]}}}`,
		Handler: func(ctx context.Context, job *worker.Job) (any, error) { return job.Input, nil },
	}
}

// flakyType fails its first attempt (a retryable error) and succeeds on the
// second.
func flakyType() worker.JobType {
	return worker.JobType{
		Name: "flaky", Description: "Fails once, then works.",
		Retry: worker.RetryPolicy{MaxAttempts: 3, BaseDelay: 300 * time.Millisecond, MaxDelay: time.Second},
		Handler: func(ctx context.Context, job *worker.Job) (any, error) {
			if job.Attempt == 1 {
				return nil, errors.New("first attempts always fail")
			}
			return "fine", nil
		},
	}
}

func navigate(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
}

func click(t *testing.T, ctx context.Context, id string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID(id)), chromedp.Click(chromedp.ID(id))); err != nil {
		t.Fatalf("click #%s: %v", id, err)
	}
}

// selectOption picks value in the select with id, as a user would (the
// page hears a change event).
func selectOption(t *testing.T, ctx context.Context, id, value string) {
	t.Helper()
	js := `(() => { const s = document.getElementById(` + testsys.MustJSON(id) + `);
		s.value = ` + testsys.MustJSON(value) + `; s.dispatchEvent(new Event("change")); return s.value; })()`
	if got, err := chromedp.Run(ctx, chromedp.Evaluate[string](js)); err != nil || got != value {
		t.Fatalf("select %q in #%s: got %q, %v", value, id, got, err)
	}
}

// apiPages reads every page of GET /api/jobs as sys's caller, limit jobs a page.
func apiPages(t *testing.T, sys *testsys.System, limit string) [][]string {
	t.Helper()
	var pages [][]string
	cursor := ""
	for {
		var body struct {
			Jobs       []jobs.Snapshot `json:"jobs"`
			NextCursor string          `json:"next_cursor"`
		}
		sys.Do(t, "GET", "/api/jobs?limit="+limit+"&cursor="+url.QueryEscape(cursor), "", "", nil, &body)
		var ids []string
		for _, j := range body.Jobs {
			ids = append(ids, j.ID)
		}
		pages = append(pages, ids)
		if body.NextCursor == "" {
			return pages
		}
		cursor = body.NextCursor
	}
}

// TestBrowserJobsFiltersAndPaging pages through seven jobs three at a time
// (Older, then Newer back), and filters them by type and status; the
// filters stay in the URL across a reload.
func TestBrowserJobsFiltersAndPaging(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	sys := testsys.Start(t, testsys.WithTypes(echoType()))
	var all, echoes []string
	for i := range 7 {
		typ, in := "demo", `{"steps":1,"step_ms":1}`
		if i%3 == 1 {
			typ, in = "echo", `{"text":"hi"}`
		}
		id := sys.Submit(t, typ, in).ID
		all = append(all, id)
		if typ == "echo" {
			echoes = append(echoes, id)
		}
	}
	for _, id := range all {
		sys.WaitStatus(t, id, jobs.StatusSucceeded, 20*time.Second)
	}
	sys.WaitListed(t, all...) // the index follows the 202s by a few milliseconds
	want := apiPages(t, sys, "3")
	if len(want) != 3 {
		t.Fatalf("the API pages 7 jobs 3 at a time into %d pages: %q", len(want), want)
	}
	shareSession(t, ctx, sys)

	navigate(t, ctx, sys.URL+"/?limit=3")
	onPage := func(n int) pageState {
		t.Helper()
		return waitPage(t, ctx, "page "+string(rune('1'+n))+" of the jobs", func(p pageState) bool {
			return slices.Equal(rowIDs(p.Rows), want[n])
		})
	}
	p := onPage(0)
	if p.OlderDisabled || !p.NewerDisabled {
		t.Errorf("first page: Older disabled %v, Newer disabled %v; want Older on, Newer off", p.OlderDisabled, p.NewerDisabled)
	}
	click(t, ctx, "older")
	onPage(1)
	click(t, ctx, "older")
	p = onPage(2)
	if !p.OlderDisabled || p.NewerDisabled {
		t.Errorf("last page: Older disabled %v, Newer disabled %v; want Older off, Newer on", p.OlderDisabled, p.NewerDisabled)
	}
	click(t, ctx, "newer")
	onPage(1)
	click(t, ctx, "newer")
	onPage(0)

	// Filter by type: only the echo jobs, newest first, and the URL says so.
	selectOption(t, ctx, "filter-type", "echo")
	slices.Reverse(echoes)
	p = waitPage(t, ctx, "the echo jobs", func(p pageState) bool { return slices.Equal(rowIDs(p.Rows), echoes) })
	if p.Search != "?type=echo&limit=3" {
		t.Errorf("location.search = %q; want the filter and the limit in it", p.Search)
	}
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitPage(t, ctx, "the echo jobs after a reload", func(p pageState) bool { return slices.Equal(rowIDs(p.Rows), echoes) })
	if v, err := chromedp.Run(ctx, chromedp.Value(chromedp.ID("filter-type"))); err != nil || v != "echo" {
		t.Errorf("type filter after a reload = %q, %v; want echo", v, err)
	}

	// Both filters, matching nothing: the table says so.
	selectOption(t, ctx, "filter-status", "failed")
	p = waitPage(t, ctx, "an empty table", func(p pageState) bool { return len(p.Rows) == 0 && p.ListNote != "" })
	if !strings.Contains(p.ListNote, "No jobs match these filters") || p.Search != "?status=failed&type=echo&limit=3" {
		t.Errorf("no failed echo jobs: note %q, search %q; want it to say none match, with both filters in the URL", p.ListNote, p.Search)
	}
}

// TestBrowserQueueFromStringBooleanEnumFields queues an echo job from the
// fields its schema makes (text, a checkbox, a choice), and from the raw
// JSON after switching back and forth.
func TestBrowserQueueFromStringBooleanEnumFields(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	sys := testsys.Start(t, testsys.WithTypes(echoType()))

	navigate(t, ctx, sys.URL+"/")
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("field-steps"))); err != nil {
		t.Fatal(err)
	}
	selectOption(t, ctx, "job-type", "echo")
	if err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.ID("field-text")),
		chromedp.SetValue(chromedp.ID("field-text"), "hello there"),
		chromedp.Click(chromedp.ID("field-shout")),
	); err != nil {
		t.Fatal(err)
	}
	selectOption(t, ctx, "field-mood", "1") // the second choice, "loud"
	// The raw box shows what the fields make; back to the fields, nothing is lost.
	click(t, ctx, "raw-toggle")
	raw, err := chromedp.Run(ctx, chromedp.Value(chromedp.ID("job-input")))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(raw), &got); err != nil || got["text"] != "hello there" || got["shout"] != true || got["mood"] != "loud" {
		t.Fatalf("raw JSON of the fields = %s (%v); want text, shout and mood as set", raw, err)
	}
	click(t, ctx, "raw-toggle")
	click(t, ctx, "queue-button")
	p := waitPage(t, ctx, "the echo job to succeed", func(p pageState) bool {
		return strings.HasPrefix(p.Path, "/jobs/") && p.Status == "succeeded"
	})
	if !strings.Contains(p.Result, `"mood": "loud"`) || !strings.Contains(p.Result, `"shout": true`) || !strings.Contains(p.JobInput, `"hello there"`) {
		t.Errorf("result %q, input %q; want the input the fields made", p.Result, p.JobInput)
	}
}

// TestBrowserCancelWithConfirmThenRetry cancels a running job from its page
// (after the inline confirmation, which can also be dismissed), then
// retries it, which leads to the new job's page.
func TestBrowserCancelWithConfirmThenRetry(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	sys := testsys.Start(t)
	id := sys.Submit(t, "demo", `{"steps":600,"step_ms":50}`).ID
	shareSession(t, ctx, sys)

	navigate(t, ctx, sys.URL+"/jobs/"+id)
	p := waitPage(t, ctx, "the job running", func(p pageState) bool { return p.Status == "running" && slices.Contains(p.Buttons, "cancel") })
	if slices.Contains(p.Buttons, "retry") {
		t.Errorf("buttons of a running job: %q; want no retry", p.Buttons)
	}
	if len(p.Snippets) != 4 || !strings.Contains(p.Snippets[0], "/api/jobs/"+id) || p.Snippets[1] != "nats sub 'jobs."+id+".progress'" ||
		!strings.HasPrefix(p.Snippets[2], "curl -N ") || !strings.Contains(p.Snippets[2], "/api/jobs/"+id+"/events") ||
		!strings.Contains(p.Snippets[3], "/static/jobwire.js") || !strings.Contains(p.Snippets[3], `<jobwire-progress job-id="`+id+`"`) {
		t.Errorf("snippets = %q; want curl, nats sub, SSE and the embed element for this job", p.Snippets)
	}

	click(t, ctx, "cancel")
	waitPage(t, ctx, "the confirmation", func(p pageState) bool {
		return slices.Equal(p.Buttons, []string{"cancel-yes", "cancel-no"})
	})
	click(t, ctx, "cancel-no")
	waitPage(t, ctx, "the confirmation dismissed", func(p pageState) bool { return slices.Equal(p.Buttons, []string{"cancel"}) })
	if snap, _ := sys.Get(t, id); snap.Status != jobs.StatusRunning {
		t.Fatalf("job is %s after dismissing the confirmation; want it still running", snap.Status)
	}
	click(t, ctx, "cancel")
	click(t, ctx, "cancel-yes")
	p = waitPage(t, ctx, "the job canceled", func(p pageState) bool {
		return p.Status == "canceled" && slices.Equal(p.Buttons, []string{"retry"})
	})
	if len(p.Attempts) != 1 || !strings.Contains(p.Attempts[0], "canceled") {
		t.Errorf("attempts = %q; want one, canceled", p.Attempts)
	}
	screenshot(t, ctx, "canceled.png")

	click(t, ctx, "retry")
	p = waitPage(t, ctx, "the new job's page", func(p pageState) bool {
		return strings.HasPrefix(p.Path, "/jobs/") && p.Path != "/jobs/"+id && p.JobID != "" && p.Status == "running"
	})
	newID := strings.TrimPrefix(p.Path, "/jobs/")
	if snap, _ := sys.Get(t, newID); snap.RetryOf != id {
		t.Errorf("the new job %s retries %q; want %s", newID, snap.RetryOf, id)
	}
	waitPage(t, ctx, "the link to the retried job", func(p pageState) bool { return p.JobInput != "" })
	if got, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("retry-of"))); err != nil || got != id {
		t.Errorf("\"Retry of\" shows %q, %v; want %s", got, err, id)
	}
	sys.Cancel(t, newID, "")
}

// TestBrowserAttemptHistory opens a job that failed once and succeeded on
// its second attempt: the page lists both attempts, the first with its
// error and the time of the retry.
func TestBrowserAttemptHistory(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	sys := testsys.Start(t, testsys.WithTypes(flakyType()))
	id := sys.Submit(t, "flaky", `{}`).ID
	shareSession(t, ctx, sys)
	navigate(t, ctx, sys.URL+"/jobs/"+id)
	p := waitPage(t, ctx, "two attempts", func(p pageState) bool { return p.Status == "succeeded" && len(p.Attempts) == 2 })
	first, second := strings.Split(p.Attempts[0], " | "), strings.Split(p.Attempts[1], " | ")
	if len(first) != 5 || first[0] != "1" || first[1] == "" || first[2] == "" || !strings.Contains(first[3], "first attempts always fail") || first[4] == "" {
		t.Errorf("first attempt = %q; want number, start, end, the error and the next retry's time", first)
	}
	if len(second) != 5 || second[0] != "2" || !strings.Contains(second[3], "succeeded") || second[4] != "" {
		t.Errorf("second attempt = %q; want it succeeded, with no retry", second)
	}
	screenshot(t, ctx, "attempts.png")
}

// signIn uses the header's "Sign in with token" control; the page reloads
// as the token's subject.
func signIn(t *testing.T, ctx context.Context, token, sub string) {
	t.Helper()
	if p := waitPage(t, ctx, "the page", func(pageState) bool { return true }); !p.SigninShown {
		click(t, ctx, "signin-toggle")
	}
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.ID("token-input"), token), chromedp.Click(chromedp.ID("signin-button"))); err != nil {
		t.Fatal(err)
	}
	waitPage(t, ctx, "signed in as "+sub, func(p pageState) bool { return p.SignedIn == "Token: "+sub })
}

func signOut(t *testing.T, ctx context.Context) {
	t.Helper()
	click(t, ctx, "signout")
	waitPage(t, ctx, "signed out", func(p pageState) bool { return p.SignedIn == "" && p.Conn == "live" })
}

// TestBrowserAdminSeesEveryOwner signs in with an admin token: the table
// lists another owner's jobs, running ones live, and a job queued by that
// owner meanwhile appears by itself (watch_all over a WebSocket that
// carries the token as a subprotocol). Signed in as a normal user instead,
// the table lists only that user's jobs.
func TestBrowserAdminSeesEveryOwner(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t, chromedp.WindowSize(1100, 700))
	sys := testsys.Start(t, testsys.WithTypes(echoType()))
	bob := sys.As(testsys.Token(t, "bob", false, time.Hour))
	alice := sys.As(testsys.Token(t, "alice", false, time.Hour))
	aliceJob := alice.Submit(t, "demo", `{"steps":1,"step_ms":1}`).ID
	done := bob.Submit(t, "echo", `{"text":"done"}`).ID
	failed := bob.Submit(t, "demo", `{"steps":5,"step_ms":1,"fail_at_step":3}`).ID
	bob.WaitStatus(t, done, jobs.StatusSucceeded, 20*time.Second)
	bob.WaitStatus(t, failed, jobs.StatusFailed, 20*time.Second)
	var running []string
	for _, ms := range []string{"60", "90", "120"} {
		running = append(running, bob.Submit(t, "demo", `{"steps":200,"step_ms":`+ms+`}`).ID)
	}

	navigate(t, ctx, sys.URL+"/")
	signIn(t, ctx, testsys.Token(t, "root", true, time.Hour), "root")
	p := waitPage(t, ctx, "every owner's jobs, the running ones under way", func(p pageState) bool {
		for _, id := range running {
			if r, ok := p.row(id); !ok || r.Status != "running" || percent(pageState{Percent: r.Percent}) < 1 {
				return false
			}
		}
		_, ok := p.row(aliceJob)
		return ok && p.Conn == "live"
	})
	if r, _ := p.row(failed); r.Status != "failed" {
		t.Errorf("bob's failed job shows %q", r.Status)
	}
	screenshot(t, ctx, "dashboard.png") // docs/img/dashboard.png is one of these

	// A job bob queues now appears at the top by itself, and runs to its end.
	late := bob.Submit(t, "demo", `{"steps":10,"step_ms":50}`).ID
	p = waitPage(t, ctx, "bob's new job, finished, on top", func(p pageState) bool {
		r, ok := p.row(late)
		return ok && r.Status == "succeeded" && r.Percent == "100%"
	})
	if p.Rows[0].ID != late {
		t.Errorf("first row is %s; want the new job %s on top", p.Rows[0].ID, late)
	}

	signOut(t, ctx)
	signIn(t, ctx, testsys.Token(t, "alice", false, time.Hour), "alice")
	p = waitPage(t, ctx, "alice's jobs", func(p pageState) bool { _, ok := p.row(aliceJob); return ok })
	if !slices.Equal(rowIDs(p.Rows), []string{aliceJob}) {
		t.Errorf("alice's table lists %q; want only her job %s", rowIDs(p.Rows), aliceJob)
	}
}

// TestBrowserNarrowScreen opens the jobs table, a job page and the
// overview 390 px wide:
// nothing is wider than the screen.
func TestBrowserNarrowScreen(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	// Headless Chromium keeps windows at least 500 px wide; a phone's
	// viewport is emulated instead.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844)); err != nil {
		t.Fatal(err)
	}
	sys := testsys.Start(t)
	id := sys.Submit(t, "demo", `{"steps":400,"step_ms":50}`).ID
	sys.Submit(t, "demo", `{"steps":1,"step_ms":1}`)
	shareSession(t, ctx, sys)
	const overflow = `document.documentElement.scrollWidth - document.documentElement.clientWidth`

	navigate(t, ctx, sys.URL+"/")
	waitPage(t, ctx, "two jobs", func(p pageState) bool { return len(p.Rows) == 2 })
	if w, err := chromedp.Run(ctx, chromedp.Evaluate[int](`innerWidth`)); err != nil || w != 390 {
		t.Fatalf("the page is %d px wide (%v); want 390", w, err)
	}
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](overflow)); err != nil || n > 0 {
		t.Errorf("the jobs page is %d px wider than a 390 px screen (%v)", n, err)
	}
	screenshot(t, ctx, "narrow-jobs.png")

	navigate(t, ctx, sys.URL+"/jobs/"+id)
	waitPage(t, ctx, "the job running", func(p pageState) bool { return p.Status == "running" && percent(p) > 0 })
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](overflow)); err != nil || n > 0 {
		t.Errorf("the job page is %d px wider than a 390 px screen (%v)", n, err)
	}
	screenshot(t, ctx, "narrow-job.png")
	sys.Cancel(t, id, "")

	navigate(t, ctx, sys.URL+"/overview")
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("overview-note"))); err != nil {
		t.Fatal(err)
	}
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](overflow)); err != nil || n > 0 {
		t.Errorf("the overview is %d px wider than a 390 px screen (%v)", n, err)
	}
}

// TestBrowserJobsListUpdatesLive queues a job from outside the page (Go's
// HTTP client, the same session): it appears in the open table by itself
// and runs to its end there, over the watch_mine feed.
func TestBrowserJobsListUpdatesLive(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	sys := testsys.Start(t)
	shareSession(t, ctx, sys)

	navigate(t, ctx, sys.URL+"/")
	waitPage(t, ctx, "the empty table, live", func(p pageState) bool {
		return p.Conn == "live" && strings.Contains(p.ListNote, "No jobs yet")
	})
	id := sys.Submit(t, "demo", `{"steps":30,"step_ms":100}`).ID
	var between []string
	p := waitPage(t, ctx, "the new job to run to its end in the table", func(p pageState) bool {
		r, ok := p.row(id)
		if n := percent(pageState{Percent: r.Percent}); ok && n > 0 && n < 100 && !slices.Contains(between, r.Percent) {
			between = append(between, r.Percent)
		}
		return ok && r.Status == "succeeded" && r.Percent == "100%"
	})
	if len(between) == 0 {
		t.Error("the table never showed a percentage between 0% and 100% while the job ran")
	}
	if p.Conn != "live" {
		t.Errorf("connection shows %q; want live (the watch_mine feed), not polling", p.Conn)
	}
}

// TestBrowserOverview runs jobs of two types to their ends and opens the
// overview: per-type counts and an hour's chart with the ended jobs in it.
func TestBrowserOverview(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	sys := testsys.Start(t, testsys.WithTypes(echoType()))
	ids := []string{
		sys.Submit(t, "demo", `{"steps":1,"step_ms":1}`).ID,
		sys.Submit(t, "demo", `{"steps":1,"step_ms":1}`).ID,
		sys.Submit(t, "demo", `{"steps":3,"step_ms":1,"fail_at_step":2}`).ID,
		sys.Submit(t, "echo", `{"text":"x"}`).ID,
	}
	for _, id := range ids {
		sys.WaitFor(t, id, "its end", 20*time.Second, func(s jobs.Snapshot) bool { return s.Status.Terminal() })
	}
	shareSession(t, ctx, sys)
	navigate(t, ctx, sys.URL+"/overview")

	type card struct {
		Counts map[string]string `json:"counts"`
		Bars   map[string]int    `json:"bars"` // rects drawn per series
		Slots  int               `json:"slots"`
	}
	const read = `(() => Object.fromEntries([...document.querySelectorAll(".type-card")].map((c) => [c.dataset.type, {
		counts: Object.fromEntries([...c.querySelectorAll(".counts li")].map((li) => [li.dataset.status, li.querySelector(".count").textContent])),
		bars: Object.fromEntries(["succeeded", "failed", "canceled"].map((k) => [k, c.querySelectorAll("svg rect.bar-" + k).length])),
		slots: c.querySelectorAll("svg g.minute").length,
	}])))()`
	wctx, cancel := context.WithTimeout(ctx, eventWait)
	defer cancel()
	var last map[string]card
	for {
		cards, err := chromedp.Run(wctx, chromedp.Evaluate[map[string]card](read))
		if err == nil {
			last = cards
			demo, echo := cards["demo"], cards["echo"]
			if demo.Counts["succeeded"] == "2" && demo.Counts["failed"] == "1" && echo.Counts["succeeded"] == "1" &&
				demo.Bars["succeeded"] > 0 && demo.Bars["failed"] > 0 && demo.Slots == 60 {
				break
			}
		}
		select {
		case <-wctx.Done():
			t.Fatalf("the overview never showed demo 2 succeeded, 1 failed, echo 1 succeeded, with bars in 60 minute slots: %+v (%v)", last, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	screenshot(t, ctx, "overview.png")
}

// contrastJS lists the visible texts of the page whose colour is below
// WCAG AA contrast against their background (4.5:1; 3:1 for large text),
// disabled controls excepted.
const contrastJS = `(() => {
	const rgba = (s) => { const m = s.match(/[\d.]+/g).map(Number); return [m[0], m[1], m[2], m.length > 3 ? m[3] : 1]; };
	const lum = ([r, g, b]) => { const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
	const over = (top, under) => { const a = top[3]; return [0, 1, 2].map((i) => top[i] * a + under[i] * (1 - a)).concat(1); };
	const background = (e) => {
		const layers = [];
		for (let n = e; n; n = n.parentElement) {
			const c = rgba(getComputedStyle(n).backgroundColor);
			if (c[3] > 0) layers.push(c);
			if (c[3] === 1) break;
		}
		let bg = [255, 255, 255, 1];
		if (layers.length && layers[layers.length - 1][3] === 1) bg = layers.pop();
		while (layers.length) bg = over(layers.pop(), bg);
		return bg;
	};
	const bad = [];
	for (const e of document.querySelectorAll("body *")) {
		if (!e.getClientRects().length || e.closest("[disabled]") || e.closest("svg")) continue;
		const own = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
		if (!own) continue;
		const st = getComputedStyle(e);
		const fg = over(rgba(st.color), background(e));
		const l1 = lum(fg), l2 = lum(background(e));
		const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
		const large = parseFloat(st.fontSize) >= 24 || (parseFloat(st.fontSize) >= 18.66 && Number(st.fontWeight) >= 700);
		if (ratio < (large ? 3 : 4.5)) bad.push(e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + "." + e.className + " " + JSON.stringify(e.textContent.trim().slice(0, 30)) + " " + ratio.toFixed(2));
	}
	return bad;
})()`

// TestBrowserContrastLightAndDark checks every text of the jobs page, a
// job page and the overview for AA contrast, in the light and in the dark
// colour scheme.
func TestBrowserContrastLightAndDark(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	sys := testsys.Start(t)
	running := sys.Submit(t, "demo", `{"steps":400,"step_ms":50}`).ID
	failed := sys.Submit(t, "demo", `{"steps":3,"step_ms":1,"fail_at_step":2}`).ID
	sys.Submit(t, "demo", `{"steps":1,"step_ms":1}`)
	sys.WaitStatus(t, failed, jobs.StatusFailed, 20*time.Second)
	shareSession(t, ctx, sys)
	for _, scheme := range []string{"light", "dark"} {
		if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		}); err != nil {
			t.Fatal(err)
		}
		for _, page := range []struct{ path, ready string }{
			{"/", "the jobs"}, {"/jobs/" + failed, "the failed job"}, {"/jobs/" + running, "the running job"}, {"/overview", "the overview"},
		} {
			navigate(t, ctx, sys.URL+page.path)
			waitPage(t, ctx, page.ready, func(p pageState) bool {
				switch {
				case page.path == "/":
					return len(p.Rows) == 3
				case strings.HasPrefix(page.path, "/jobs/"):
					return p.Status == "failed" || (p.Status == "running" && slices.Contains(p.Buttons, "cancel"))
				}
				return true
			})
			bad, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](contrastJS))
			if err != nil {
				t.Fatal(err)
			}
			if len(bad) > 0 {
				t.Errorf("%s, %s scheme: texts below AA contrast:\n%s", page.path, scheme, strings.Join(bad, "\n"))
			}
		}
		screenshot(t, ctx, "overview-"+scheme+".png")
	}
	navigate(t, ctx, sys.URL+"/")
	waitPage(t, ctx, "the jobs", func(p pageState) bool { return len(p.Rows) == 3 })
	screenshot(t, ctx, "jobs-dark.png")
	sys.Cancel(t, running, "")
}

// TestBrowserSignInWithoutAnonymousSessions opens the pages of a gateway
// that gives no anonymous sessions: they load, ask for a token, and once
// signed in list the token's jobs and follow one live (the WebSocket
// carries the token as a subprotocol: the browser has no cookie).
func TestBrowserSignInWithoutAnonymousSessions(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	sys := testsys.Start(t, testsys.WithConfig(func(c *httpapi.Config) { c.AnonymousSessions = false }))
	alice := sys.As(testsys.Token(t, "alice", false, time.Hour))
	id := alice.Submit(t, "demo", `{"steps":100,"step_ms":100}`).ID

	navigate(t, ctx, sys.URL+"/")
	waitPage(t, ctx, "a request to sign in", func(p pageState) bool {
		return strings.Contains(p.ListNote, "Sign in with a token") && p.SigninShown
	})
	signIn(t, ctx, testsys.Token(t, "alice", false, time.Hour), "alice")
	waitPage(t, ctx, "alice's job", func(p pageState) bool { _, ok := p.row(id); return ok })

	navigate(t, ctx, sys.URL+"/jobs/"+id)
	var between []string
	waitPage(t, ctx, "the job followed live to its end", func(p pageState) bool {
		if n := percent(p); n > 0 && n < 100 && !slices.Contains(between, p.Percent) {
			between = append(between, p.Percent)
		}
		return p.Status == "succeeded" && p.Conn == "finished"
	})
	if len(between) == 0 {
		t.Error("the job page never showed a percentage between 0% and 100% while the job ran")
	}
}

// tabTo presses Tab until the focused element satisfies the JS predicate
// focused (on document.activeElement as e), and checks it shows its focus.
func tabTo(t *testing.T, ctx context.Context, what, focused string) {
	t.Helper()
	check := `(() => { const e = document.activeElement; return !!e && (` + focused + `); })()`
	for range 40 {
		if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Tab)); err != nil {
			t.Fatal(err)
		}
		if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](check)); err == nil && ok {
			outline, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.activeElement).outlineStyle`))
			if err != nil || outline == "none" {
				t.Errorf("%s has the focus but shows no outline (%q, %v)", what, outline, err)
			}
			return
		}
	}
	t.Fatalf("40 presses of Tab never reached %s", what)
}

func activeID(t *testing.T, ctx context.Context) string {
	t.Helper()
	id, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement ? document.activeElement.id : ""`))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestBrowserKeyboardOnly opens a job from the table and cancels it with
// the keyboard alone: Tab, Enter, Escape and Shift+Tab.
func TestBrowserKeyboardOnly(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	sys := testsys.Start(t)
	id := sys.Submit(t, "demo", `{"steps":600,"step_ms":50}`).ID
	shareSession(t, ctx, sys)

	navigate(t, ctx, sys.URL+"/")
	waitPage(t, ctx, "the job listed", func(p pageState) bool { _, ok := p.row(id); return ok })
	tabTo(t, ctx, "the job's link", `e.matches("#jobs a") && e.closest("tr").dataset.id === `+testsys.MustJSON(id))
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	waitPage(t, ctx, "the job page, running", func(p pageState) bool {
		return p.Path == "/jobs/"+id && p.Status == "running" && slices.Contains(p.Buttons, "cancel")
	})
	tabTo(t, ctx, "the cancel button", `e.id === "cancel"`)
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	waitPage(t, ctx, "the confirmation", func(p pageState) bool { return slices.Contains(p.Buttons, "cancel-yes") })
	if got := activeID(t, ctx); got != "cancel-no" {
		t.Errorf("focus is on %q once the confirmation opens; want the safe choice, cancel-no", got)
	}
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Escape)); err != nil {
		t.Fatal(err)
	}
	waitPage(t, ctx, "the confirmation dismissed", func(p pageState) bool { return slices.Equal(p.Buttons, []string{"cancel"}) })
	if got := activeID(t, ctx); got != "cancel" {
		t.Errorf("focus is on %q after Escape; want back on cancel", got)
	}
	if err := chromedp.Do(ctx,
		chromedp.KeyEvent(kb.Enter),
		chromedp.KeyEvent(kb.Tab, chromedp.KeyModifiers(chromedp.ModifierShift)),
	); err != nil {
		t.Fatal(err)
	}
	if got := activeID(t, ctx); got != "cancel-yes" {
		t.Fatalf("focus is on %q after Shift+Tab; want cancel-yes", got)
	}
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	waitPage(t, ctx, "the job canceled", func(p pageState) bool { return p.Status == "canceled" })
}
