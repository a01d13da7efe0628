package httpapi_test

import (
	"context"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/jobwire/jobwire/internal/testsys"
	"github.com/jobwire/jobwire/shared/jobs"
)

// The browser tests drive the real pages in a headless Chromium against a
// whole running system. Screenshots go to t.ArtifactDir(); keep them with
//
//	go test -run Browser -artifacts -outputdir /tmp/shots ./services/gateway/

func TestBrowserQueueJobAndWatch(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	sys := testsys.Start(t)

	// The form is generated from the demo type's input schema: a number
	// field per property, with the schema's bounds.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(sys.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("field-steps")),
		chromedp.SetValue(chromedp.ID("field-steps"), "30"),
		chromedp.SetValue(chromedp.ID("field-step_ms"), "150"), // 4.5 s: time to see it run on a busy machine
	); err != nil {
		t.Fatal(err)
	}
	bounds, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`(() => { const f = document.getElementById("field-steps");
		return [f.type, f.min, f.max, f.step, document.getElementById("job-input").closest("[hidden]") ? "raw hidden" : "raw shown"]; })()`))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"number", "1", "10000", "1", "raw hidden"}; !slices.Equal(bounds, want) {
		t.Errorf("steps field [type min max step, raw box] = %q; want %q (from the schema)", bounds, want)
	}
	screenshot(t, ctx, "index.png")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("queue-button"))); err != nil {
		t.Fatal(err)
	}

	page := waitPage(t, ctx, "the job page", func(p pageState) bool {
		return strings.HasPrefix(p.Path, "/jobs/") && p.JobID != ""
	})
	id := strings.TrimPrefix(page.Path, "/jobs/")
	if err := jobs.ValidateID(id); err != nil || page.JobID != id {
		t.Fatalf("job page %q shows job id %q; want a valid id from the path", page.Path, page.JobID)
	}

	// Poll while the job runs: a percentage strictly between 0 and 100 on
	// the way proves the page updates live, not only on load.
	var between []string
	final := waitPage(t, ctx, "the job to succeed", func(p pageState) bool {
		if n := percent(p); n > 0 && n < 100 && !slices.Contains(between, p.Percent) {
			between = append(between, p.Percent)
		}
		return p.Status == "succeeded" && p.Percent == "100%"
	})
	if len(between) == 0 {
		t.Error("the page never showed a percentage between 0% and 100% while the job ran")
	}
	if !strings.Contains(final.Result, `"steps": 30`) {
		t.Errorf("result = %q; want the steps of the submitted input, 30", final.Result)
	}
	t.Logf("percentages seen while running: %v", between)
	screenshot(t, ctx, "job.png")

	// The index page lists the job as done.
	if err := chromedp.Do(ctx, chromedp.Navigate(sys.URL+"/")); err != nil {
		t.Fatal(err)
	}
	waitPage(t, ctx, "the job in the recent jobs list", func(p pageState) bool {
		return slices.ContainsFunc(p.Jobs, func(line string) bool {
			return strings.Contains(line, id) && strings.Contains(line, "succeeded")
		})
	})
	screenshot(t, ctx, "index-after.png")
}

func TestBrowserFinishedJobShowsFinalState(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	sys := testsys.Start(t)

	id := sys.Submit(t, "demo", `{"steps":2,"step_ms":1}`).ID
	sys.WaitStatus(t, id, jobs.StatusSucceeded, 30*time.Second)
	shareSession(t, ctx, sys)

	if err := chromedp.Do(ctx, chromedp.Navigate(sys.URL+"/jobs/"+id)); err != nil {
		t.Fatal(err)
	}
	p := waitPage(t, ctx, "the final state", func(p pageState) bool {
		return p.Status == "succeeded" && p.Percent == "100%"
	})
	if p.JobID != id || p.NotFound != "" {
		t.Errorf("page shows job %q, not-found text %q; want job %q and no not-found text", p.JobID, p.NotFound, id)
	}
}

// TestBrowserReconnects cuts the page's connection while a job runs: the
// page says so, reconnects by itself and still shows the job's end.
func TestBrowserReconnects(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	sys := testsys.Start(t)
	px := newCutProxy(t, sys.URL)

	id := sys.Submit(t, "demo", `{"steps":60,"step_ms":100}`).ID // 6 s: still running once the page is up on a busy machine
	shareSession(t, ctx, sys)
	if err := chromedp.Do(ctx, chromedp.Navigate(px.URL+"/jobs/"+id)); err != nil {
		t.Fatal(err)
	}
	waitPage(t, ctx, "live progress", func(p pageState) bool {
		return p.Conn == "live" && p.Status == "running" && percent(p) > 0
	})
	px.setDown(true)
	waitPage(t, ctx, "the page to notice the cut", func(p pageState) bool {
		return p.Conn == "reconnecting…"
	})
	px.setDown(false)
	waitPage(t, ctx, "the job to succeed after reconnecting", func(p pageState) bool {
		return p.Status == "succeeded" && p.Percent == "100%"
	})
}

func TestBrowserUnknownJob(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	sys := testsys.Start(t)

	if err := chromedp.Do(ctx, chromedp.Navigate(sys.URL+"/jobs/01ZZZZZZZZZZZZZZZZZZZZZZZZ")); err != nil {
		t.Fatal(err)
	}
	p := waitPage(t, ctx, "the not-found message", func(p pageState) bool {
		return strings.Contains(p.NotFound, "Job not found")
	})
	if p.JobShown {
		t.Error("the progress area is still shown for an unknown job")
	}
}

// TestBrowserShowsSubmitErrors submits a job the server refuses: the page
// says why next to the button and keeps the input; fixed, it goes through.
func TestBrowserShowsSubmitErrors(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	sys := testsys.Start(t)

	if err := chromedp.Do(ctx,
		chromedp.Navigate(sys.URL+"/"),
		rawJSON(`{"steps": 0}`),
		chromedp.Click(chromedp.ID("queue-button")),
	); err != nil {
		t.Fatal(err)
	}
	p := waitPage(t, ctx, "the submit error", func(p pageState) bool {
		return p.FormError != "" && !p.ButtonDisabled
	})
	if !strings.Contains(p.FormError, "invalid_input") && !strings.Contains(p.FormError, "steps") {
		t.Errorf("form error = %q; want the server's invalid_input error about steps", p.FormError)
	}
	if p.Path != "/" {
		t.Errorf("path = %q after a refused submit; want to stay on /", p.Path)
	}
	if p.Input != `{"steps": 0}` {
		t.Errorf("input = %q after a refused submit; want the user's input kept", p.Input)
	}
	screenshot(t, ctx, "submit-error.png")

	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("job-input"), `{"steps": 2, "step_ms": 1}`),
		chromedp.Click(chromedp.ID("queue-button")),
	); err != nil {
		t.Fatal(err)
	}
	page := waitPage(t, ctx, "the job page", func(p pageState) bool {
		return strings.HasPrefix(p.Path, "/jobs/") && p.JobID != ""
	})
	if id := strings.TrimPrefix(page.Path, "/jobs/"); jobs.ValidateID(id) != nil || page.JobID != id {
		t.Fatalf("job page %q shows job id %q; want a valid id from the path", page.Path, page.JobID)
	}
	final := waitPage(t, ctx, "the job to succeed", func(p pageState) bool {
		return p.Status == "succeeded" && p.Percent == "100%"
	})
	if !strings.Contains(final.Result, `"steps": 2`) {
		t.Errorf("result = %q; want the steps of the fixed input, 2", final.Result)
	}
}

// TestBrowserSubmitWhileOffline submits while the server cannot be reached:
// the page says so, keeps the input and lets the user retry.
func TestBrowserSubmitWhileOffline(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	sys := testsys.Start(t)
	px := newCutProxy(t, sys.URL)

	const in = `{"steps": 2, "step_ms": 1}`
	if err := chromedp.Do(ctx,
		chromedp.Navigate(px.URL+"/"),
		rawJSON(in),
	); err != nil {
		t.Fatal(err)
	}
	px.setDown(true)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("queue-button"))); err != nil {
		t.Fatal(err)
	}
	p := waitPage(t, ctx, "the network error", func(p pageState) bool {
		return p.FormError != "" && !p.ButtonDisabled
	})
	if !strings.Contains(p.FormError, "Could not reach the server") || p.Path != "/" || p.Input != in {
		t.Errorf("after a failed submit: form error %q, path %q, input %q; want a network error on / with the input kept", p.FormError, p.Path, p.Input)
	}

	px.setDown(false)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("queue-button"))); err != nil {
		t.Fatal(err)
	}
	waitPage(t, ctx, "the job to succeed after the retry", func(p pageState) bool {
		return strings.HasPrefix(p.Path, "/jobs/") && p.Status == "succeeded"
	})
}

// TestBrowserQueueJobWithoutScripts checks that the form still works as a
// plain HTML form when the browser runs no JavaScript.
func TestBrowserQueueJobWithoutScripts(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t, chromedp.Flag("blink-settings", "scriptEnabled=false"))
	sys := testsys.Start(t)

	if err := chromedp.Do(ctx,
		chromedp.Navigate(sys.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("queue-button")),
		chromedp.SetValue(chromedp.ID("job-input"), `{"steps": 2, "step_ms": 1}`),
		chromedp.Click(chromedp.ID("queue-button")),
	); err != nil {
		t.Fatal(err)
	}
	p := waitPage(t, ctx, "the job page", func(p pageState) bool {
		return strings.HasPrefix(p.Path, "/jobs/")
	})
	id := strings.TrimPrefix(p.Path, "/jobs/")
	if err := jobs.ValidateID(id); err != nil {
		t.Fatalf("form post led to %q: %v", p.Path, err)
	}
	if p.JobID != "" {
		t.Errorf("job page shows job id %q; want an empty page without scripts (are scripts disabled?)", p.JobID)
	}
	sys.As(testsys.Token(t, "admin", true, time.Hour)).WaitStatus(t, id, jobs.StatusSucceeded, 30*time.Second)
}

// rawJSON switches the queue form to its raw JSON box and types in into it.
func rawJSON(in string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.WaitVisible(chromedp.ID("raw-toggle")),
		chromedp.Click(chromedp.ID("raw-toggle")),
		chromedp.WaitVisible(chromedp.ID("job-input")),
		chromedp.SetValue(chromedp.ID("job-input"), in),
	)
}

// newBrowser starts a headless Chromium for the test and returns its
// context, which ends after 60 seconds at the latest. It skips the test when
// there is no Chromium, unless CI=true. Uncaught exceptions and security
// errors (such as Content-Security-Policy violations) in the page fail the
// test. opts add to or override the default Chromium flags.
func newBrowser(t *testing.T, opts ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("no chromium or chromium-browser in PATH; the browser tests need it on CI")
		}
		t.Skip("no chromium or chromium-browser in PATH; install Chromium to run the browser tests")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	ctx, cancel = chromedp.NewExecAllocator(ctx, append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.WindowSize(1000, 800),
	}, opts...)...)
	t.Cleanup(cancel)
	ctx, cancel = chromedp.NewContext(ctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}

	var mu sync.Mutex
	var problems []string
	done := make(chan struct{})
	messages := chromedp.Console(ctx)
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Source == "security" {
				mu.Lock()
				problems = append(problems, m.String())
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		for _, p := range problems {
			t.Errorf("page console: %s", p)
		}
	})
	return ctx
}

func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// pageState is what a user sees on a page, as far as the tests care.
type pageState struct {
	Path     string   `json:"path"`
	JobID    string   `json:"job_id"`
	Status   string   `json:"status"`
	Percent  string   `json:"percent"`
	Result   string   `json:"result"`
	NotFound string   `json:"not_found"` // text of #notfound while it is visible
	JobShown bool     `json:"job_shown"`
	Conn     string   `json:"conn"`
	Jobs     []string `json:"jobs"` // lines of the jobs table
	Rows     []jobRow `json:"rows"` // the jobs table
	Log      []string `json:"log"`  // lines of the job page's log

	ListNote      string   `json:"list_note"`      // the jobs table's note and empty-table text
	OlderDisabled bool     `json:"older_disabled"` // the pager's buttons
	NewerDisabled bool     `json:"newer_disabled"`
	Search        string   `json:"search"`       // location.search
	SignedIn      string   `json:"signed_in"`    // who the header says is signed in with a token, while shown
	SigninShown   bool     `json:"signin_shown"` // the sign-in form is open
	Attempts      []string `json:"attempts"`     // lines of the job page's attempts table
	Buttons       []string `json:"buttons"`      // ids of the job page's visible action buttons
	Snippets      []string `json:"snippets"`     // the job page's copyable snippets
	JobInput      string   `json:"job_input"`    // the job page's input box

	FormError      string `json:"form_error"` // text of #form-error while it is visible
	Input          string `json:"input"`      // value of the job input box
	ButtonDisabled bool   `json:"button_disabled"`
}

// jobRow is a row of the jobs table.
type jobRow struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Status  string `json:"status"`
	Percent string `json:"percent"`
}

// rowIDs are the ids of rows, in order.
func rowIDs(rows []jobRow) []string {
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	return ids
}

// row is the table's row of job id.
func (p pageState) row(id string) (jobRow, bool) {
	for _, r := range p.Rows {
		if r.ID == id {
			return r, true
		}
	}
	return jobRow{}, false
}

// percent is the number #percent shows, or -1.
func percent(p pageState) int {
	n, err := strconv.Atoi(strings.TrimSuffix(p.Percent, "%"))
	if err != nil {
		return -1
	}
	return n
}

const pageStateJS = `(() => {
	const el = (id) => document.getElementById(id);
	const text = (id) => el(id) ? el(id).textContent.trim() : "";
	const shown = (id) => !!el(id) && el(id).getClientRects().length > 0;
	return {
		path: location.pathname, job_id: text("job-id"), status: text("status"),
		percent: text("percent"), result: text("result"),
		not_found: shown("notfound") ? text("notfound") : "", job_shown: shown("job"),
		conn: text("conn"), jobs: [...document.querySelectorAll("#jobs tr[data-id]")].map((tr) => tr.textContent),
		rows: [...document.querySelectorAll("#jobs tr[data-id]")].map((tr) => ({
			id: tr.dataset.id, type: tr.querySelector(".type").textContent, status: tr.querySelector(".status").textContent,
			percent: tr.querySelector(".pct").textContent })),
		list_note: [text("list-note"), ...[...document.querySelectorAll("#jobs tr.empty")].map((tr) => tr.textContent.trim())].filter(Boolean).join(" "),
		older_disabled: !el("older") || el("older").disabled, newer_disabled: !el("newer") || el("newer").disabled,
		search: location.search, signed_in: shown("signed-in") ? text("signed-in-as") : "", signin_shown: shown("signin-form"),
		attempts: [...document.querySelectorAll("#attempts tr")].map((tr) => [...tr.cells].map((c) => c.textContent.trim()).join(" | ")),
		buttons: ["cancel", "cancel-yes", "cancel-no", "retry"].filter(shown),
		snippets: [...document.querySelectorAll("#snippets pre")].map((p) => p.textContent),
		job_input: shown("input") ? text("input") : "",
		log: [...document.querySelectorAll("#log li")].map((li) => li.textContent),
		form_error: shown("form-error") ? text("form-error") : "",
		input: el("job-input") ? el("job-input").value : "",
		button_disabled: !!el("queue-button") && el("queue-button").disabled,
	};
})()`

// waitPage reads the page's state until done accepts it, and fails the test
// after eventWait, or when the browser context ends first. done sees every
// state read.
func waitPage(t *testing.T, ctx context.Context, what string, done func(pageState) bool) pageState {
	t.Helper()
	return waitJS(t, ctx, what, pageStateJS, done)
}

// waitJS evaluates js in the page until done accepts its value, and fails
// the test after eventWait, or when the browser context ends first.
func waitJS[T any](t *testing.T, ctx context.Context, what, js string, done func(T) bool) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, eventWait)
	defer cancel()
	var last T
	var lastErr error
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		// Errors are expected while a navigation replaces the page.
		p, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
		if err == nil {
			last = p
			if done(p) {
				return p
			}
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no %s within %v: %v\nlast state: %+v\nlast error: %v", what, eventWait, ctx.Err(), last, lastErr)
		case <-tick.C:
		}
	}
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(t.ArtifactDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// cutProxy forwards TCP connections to a server; setDown(true) cuts them
// all and refuses new ones until setDown(false).
type cutProxy struct {
	URL   string
	mu    sync.Mutex
	down  bool
	conns []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{URL: "http://" + ln.Addr().String()}
	addr := strings.TrimPrefix(target, "http://")
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		p.setDown(true)
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			down := p.down
			p.mu.Unlock()
			var s net.Conn
			if !down {
				s, err = net.Dial("tcp", addr)
			}
			if down || err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			wg.Go(func() { _, _ = io.Copy(s, c); s.Close() })
			wg.Go(func() { _, _ = io.Copy(c, s); c.Close() })
		}
	})
	return p
}

func (p *cutProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// shareSession gives the browser the test client's session cookie, so the
// page is opened by the owner of the jobs the test submitted.
func shareSession(t *testing.T, ctx context.Context, sys *testsys.System) {
	t.Helper()
	u, _ := url.Parse(sys.URL)
	if len(sys.HTTPClient().Jar.Cookies(u)) == 0 {
		sys.Do(t, "GET", "/api/jobs", "", "", nil, nil) // the caller's first request makes its session
	}
	for _, c := range sys.HTTPClient().Jar.Cookies(u) {
		httpOnly := true
		if _, err := chromedp.Call(ctx, network.SetCookie, network.SetCookieParams{
			Name: c.Name, Value: c.Value, Domain: u.Hostname(), Path: "/", HTTPOnly: &httpOnly,
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// The browser's own EventSource streams a job's events from the SSE
// endpoint, from the first to the final one.
func TestBrowserEventSource(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	sys := testsys.Start(t)
	id := sys.Submit(t, "demo", `{"steps":10,"step_ms":30}`).ID
	shareSession(t, ctx, sys)
	if err := chromedp.Do(ctx, chromedp.Navigate(sys.URL+"/")); err != nil {
		t.Fatal(err)
	}
	start := `(() => {
		window.__es = {seqs: [], status: "", errors: 0};
		const es = new EventSource("/api/jobs/` + id + `/events?after_seq=0");
		es.onmessage = (m) => {
			const ev = JSON.parse(m.data);
			window.__es.seqs.push(Number(m.lastEventId));
			window.__es.status = ev.status;
			if (["succeeded", "failed", "canceled"].includes(ev.status)) es.close();
		};
		es.onerror = () => { window.__es.errors++; };
		return true;
	})()`
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](start)); err != nil {
		t.Fatal(err)
	}
	type esState struct {
		Seqs   []uint64 `json:"seqs"`
		Status string   `json:"status"`
	}
	ctx, cancel := context.WithTimeout(ctx, eventWait)
	defer cancel()
	var last esState
	for {
		st, err := chromedp.Run(ctx, chromedp.Evaluate[esState]("window.__es"))
		if err != nil && ctx.Err() == nil {
			t.Fatal(err)
		}
		if st.Status == "succeeded" {
			checkExact(t, st.Seqs, 1)
			return
		}
		if err == nil {
			last = st
		}
		select {
		case <-ctx.Done():
			t.Fatalf("EventSource did not see the end within %v: %+v", eventWait, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
