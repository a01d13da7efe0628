package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jobwire/jobwire/internal/testsys"
	"github.com/jobwire/jobwire/services/gateway/httpapi"
	"github.com/jobwire/jobwire/shared/jobs"
)

// The browser tests of jobwire.js and <jobwire-progress> as another app
// uses them: a plain page on another origin (another site, even: localhost
// against the gateway's 127.0.0.1) imports the module from the gateway,
// under a strict Content-Security-Policy of its own, and follows jobs with
// a bearer token.

// embedder is the other app: a server that serves one page, whose body
// the test sets.
type embedder struct {
	URL  string // http://localhost:<port>
	mu   sync.Mutex
	body string
	csp  string
}

func newEmbedder(t *testing.T) *embedder {
	t.Helper()
	e := &embedder{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		body, csp := e.body, e.csp
		e.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", csp)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(hs.Close)
	e.URL = strings.Replace(hs.URL, "127.0.0.1", "localhost", 1)
	return e
}

// page sets the page: the module from gw, then body. Its CSP allows
// scripts and connections to the gateway only, and no inline style.
func (e *embedder) page(gw, body string) {
	ws := "ws" + strings.TrimPrefix(gw, "http")
	e.mu.Lock()
	defer e.mu.Unlock()
	e.csp = "default-src 'none'; script-src " + gw + "; connect-src " + gw + " " + ws + "; style-src 'self'; img-src 'self'; base-uri 'none'"
	e.body = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>another app</title>
<script type="module" src="` + gw + `/static/jobwire.js"></script></head><body>` + body + `</body></html>`
}

// embedSystem is a system whose gateway allows the embedder's origin.
func embedSystem(t *testing.T, e *embedder, opts ...testsys.Option) *testsys.System {
	t.Helper()
	return testsys.Start(t, append(opts, allowOrigin(e))...)
}

func allowOrigin(e *embedder) testsys.Option {
	return testsys.WithConfig(func(c *httpapi.Config) { c.AllowedOrigins = []string{e.URL} })
}

// progressEl is what a <jobwire-progress> shows.
type progressEl struct {
	ID       string   `json:"id"`
	Status   string   `json:"status"`    // data-status: the job's
	State    string   `json:"state"`     // data-state: the watch's
	Text     string   `json:"text"`      // status, stage and message
	Percent  string   `json:"percent"`   // the percentage shown
	ValueNow string   `json:"value_now"` // aria-valuenow of the progressbar
	Label    string   `json:"label"`     // its aria-label
	Live     string   `json:"live"`      // aria-live of the changing text
	Error    string   `json:"error"`
	Result   string   `json:"result"`
	Log      []string `json:"log"`
	Seqs     []uint64 `json:"seqs"` // of the log lines
}

const progressJS = `[...document.querySelectorAll("jobwire-progress")].map((e) => {
	const r = e.shadowRoot, q = (s) => r.querySelector(s), bar = q("[role=progressbar]");
	return {
		id: e.id, status: e.dataset.status || "", state: e.dataset.state || "",
		text: q(".line").textContent.trim(), percent: q(".pct").textContent,
		value_now: bar.getAttribute("aria-valuenow") || "", label: bar.getAttribute("aria-label") || "",
		live: q(".line").getAttribute("aria-live") || "",
		error: q(".error").hidden ? "" : q(".error").textContent, result: q("pre").hidden ? "" : q("pre").textContent,
		log: [...r.querySelectorAll("ol.log li")].map((li) => li.textContent),
		seqs: [...r.querySelectorAll("ol.log li[data-seq]")].map((li) => Number(li.dataset.seq)),
	};
})`

// waitElements reads the page's elements, by id, until done accepts them.
func waitElements(t *testing.T, ctx context.Context, what string, done func(map[string]progressEl) bool) map[string]progressEl {
	t.Helper()
	els := waitJS(t, ctx, what, progressJS, func(list []progressEl) bool { return done(byID(list)) })
	return byID(els)
}

func byID(list []progressEl) map[string]progressEl {
	m := map[string]progressEl{}
	for _, e := range list {
		m[e.ID] = e
	}
	return m
}

// progressTag is an element; without gw, it uses the gateway the module
// came from.
// acceptedWebSockets is how many WebSockets the gateway has accepted.
func acceptedWebSockets(t *testing.T, sys *testsys.System) float64 {
	t.Helper()
	return gatewayMetrics(t, sys).Value("jobwire_gateway_http_requests_total", "route", "/ws", "method", "GET", "code", "101")
}

func progressTag(id, jobID, gw, token, extra string) string {
	if gw != "" {
		extra += fmt.Sprintf(" url=%q", gw)
	}
	return fmt.Sprintf(`<jobwire-progress id=%q job-id=%q token=%q %s></jobwire-progress>`, id, jobID, token, extra)
}

// TestBrowserEmbedOnAnotherOrigin: elements on another origin's page show
// a job to 100 %, another owner's job and an unknown id as not found, all
// over one WebSocket; removing an element unwatches its job; the module's
// HTTP calls work across origins with the token.
func TestBrowserEmbedOnAnotherOrigin(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	e := newEmbedder(t)
	gate := make(chan struct{})
	sys := embedSystem(t, e, testsys.WithTypes(gatedLoggerType(3, 2, gate)))
	token := testsys.Token(t, "alice", false, time.Hour)
	alice, bob := sys.As(token), sys.As(testsys.Token(t, "bob", false, time.Hour))

	done := alice.Submit(t, "demo", `{"steps":10,"step_ms":50}`).ID
	running := alice.Submit(t, "gated-logger", `{}`).ID
	bobs := bob.Submit(t, "demo", `{"steps":1,"step_ms":1}`).ID
	e.page(sys.URL, progressTag("done", done, "", token, "")+progressTag("running", running, sys.URL, token, `log="10"`)+
		progressTag("bobs", bobs, sys.URL, token, "")+progressTag("unknown", "01ZZZZZZZZZZZZZZZZZZZZZZZZ", sys.URL, token, "")+
		progressTag("badtoken", done, sys.URL, "not-a-token", ""))
	navigate(t, ctx, e.URL)

	els := waitElements(t, ctx, "the job at 100 %, the others not found, the running one's log", func(m map[string]progressEl) bool {
		return m["done"].Status == "succeeded" && m["done"].Percent == "100%" &&
			m["bobs"].State == "not_found" && m["unknown"].State == "not_found" && m["badtoken"].State == "error" &&
			slices.Equal(m["running"].Log, []string{"line 1", "line 2", "line 3"})
	})
	d := els["done"]
	if d.ValueNow != "100" || !strings.Contains(d.Label, done) || d.Live != "polite" || !strings.Contains(d.Text, "succeeded") {
		t.Errorf("finished element: %+v; want aria-valuenow 100, a label naming the job, aria-live polite, the status", d)
	}
	// A refused token: WebSockets fail, so does the SSE fallback, which can say why.
	if b := els["badtoken"]; !strings.Contains(b.Error, "unauthenticated") || b.Status != "" {
		t.Errorf("element with a bad token: %+v; want the unauthenticated error and no job", b)
	}
	for _, id := range []string{"bobs", "unknown"} {
		if !strings.Contains(els[id].Text, "not found") || els[id].Percent != "" {
			t.Errorf("element %s: %+v; want \"not found\" and no percentage", id, els[id])
		}
	}
	screenshot(t, ctx, "embed.png")

	// Themes: the custom properties reach into the shadow root, and the
	// text takes the page's colour (a dark page's light text).
	theme := `(() => { const e = document.getElementById("done");
		e.style.setProperty("--jobwire-success", "rgb(1, 2, 3)");
		document.body.style.color = "rgb(240, 240, 240)";
		document.body.style.background = "rgb(10, 10, 10)";
		const r = e.shadowRoot;
		return [getComputedStyle(r.querySelector(".fill")).backgroundColor, getComputedStyle(r.querySelector(".line")).color]; })()`
	if got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](theme)); err != nil {
		t.Fatal(err)
	} else if want := []string{"rgb(1, 2, 3)", "rgb(240, 240, 240)"}; !slices.Equal(got, want) {
		t.Errorf("themed bar and text colours %q; want %q", got, want)
	}
	screenshot(t, ctx, "embed-dark.png")

	// Every element of the page shares one WebSocket: one session on the
	// gateway, following the one job still running.
	// (The finished job's unwatch may still be on its way.)
	waitUntil(t, eventWait, "one session, following the running job", func() bool {
		st := sys.GW.Live().Stats()
		return st.Sessions == 1 && st.Subscriptions == 1
	})
	if n := acceptedWebSockets(t, sys); n != 1 {
		t.Errorf("the gateway accepted %v WebSockets; want 1 for the whole page", n)
	}
	// Removed from the page, the element stops watching its job.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("running").remove(), true`)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, eventWait, "the gateway to drop the removed element's job", func() bool {
		return sys.GW.Live().Stats().Subscriptions == 0
	})
	close(gate)

	// The module's HTTP API, from the other origin (preflights and all).
	api := `(async () => {
		const { connect } = await import("` + sys.URL + `/static/jobwire.js");
		const w = connect({ url: "` + sys.URL + `", token: "` + token + `" });
		const a = await w.submit("demo", { steps: 200, step_ms: 50 }, { idempotencyKey: "embed-1" });
		const again = await w.submit("demo", { steps: 200, step_ms: 50 }, { idempotencyKey: "embed-1" });
		const got = await w.get(a.id);
		const canceled = await w.cancel(a.id, "from another origin");
		let hidden = "";
		try { await w.get("` + bobs + `"); } catch (e) { hidden = e.code + " " + e.status; }
		w.close();
		return [a.id === again.id && got.id === a.id ? "same" : "different", canceled.id === a.id ? "canceled" : "", hidden];
	})()`
	got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](api, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"same", "canceled", "not_found 404"}; !slices.Equal(got, want) {
		t.Errorf("submit twice with one key, get, cancel, get another owner's job: %q; want %q", got, want)
	}
}

// TestBrowserEmbedResumesAcrossGatewayRestart kills the gateway while an
// element follows a job's log, lets the job log on without it, and starts
// a new gateway on the same address: the element shows every line once.
func TestBrowserEmbedResumesAcrossGatewayRestart(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	e := newEmbedder(t)
	sys := embedSystem(t, e, testsys.WithoutRunner())
	gate := make(chan struct{})
	var wg sync.WaitGroup
	runCtx, stopRunner := context.WithCancel(context.Background())
	t.Cleanup(func() { stopRunner(); wg.Wait() })
	const before, after = 5, 25
	testsys.StartRunner(t, runCtx, &wg, sys.NATS, testsys.Logger(t), gatedLoggerType(before, after, gate))
	token := testsys.Token(t, "alice", false, time.Hour)
	alice := sys.As(token)
	var id string
	waitUntil(t, eventWait, "the runner's type to be known", func() bool {
		resp, b := alice.Call(t, "POST", "/api/jobs", "application/json", `{"type":"gated-logger"}`, nil)
		if resp.StatusCode == http.StatusAccepted {
			id = decodeSnap(t, b).ID
		}
		return id != ""
	})
	e.page(sys.URL, progressTag("job", id, sys.URL, token, `log="1000"`))
	navigate(t, ctx, e.URL)
	waitElements(t, ctx, "the lines before the gate", func(m map[string]progressEl) bool { return len(m["job"].Log) == before })

	addr := strings.TrimPrefix(sys.URL, "http://")
	sys.Stop()
	waitElements(t, ctx, "the element to notice", func(m map[string]progressEl) bool { return m["job"].State == "reconnecting" })
	close(gate) // the job logs on while no gateway runs
	waitUntil(t, eventWait, "the job to end", func() bool {
		ev, _, err := jobs.LastEvent(t.Context(), sys.Streams.Events, id)
		return err == nil && ev.Status.Terminal()
	})
	testsys.StartOn(t, sys.NATS, testsys.WithoutRunner(), testsys.WithAddr(addr), allowOrigin(e))

	els := waitElements(t, ctx, "the job's end after the restart", func(m map[string]progressEl) bool {
		return m["job"].Status == "succeeded"
	})
	got := els["job"]
	want := make([]string, before+after)
	for i := range want {
		want[i] = fmt.Sprintf("line %d", i+1)
	}
	if !slices.Equal(got.Log, want) {
		t.Errorf("log after the restart: %q; want line 1 to line %d, each once", got.Log, before+after)
	}
	if !slices.IsSorted(got.Seqs) || len(slices.Compact(slices.Clone(got.Seqs))) != len(got.Seqs) {
		t.Errorf("log lines' seqs %v; want them rising, none twice", got.Seqs)
	}
}

// TestBrowserEmbedSSE forces the SSE fallback: the job's every event
// arrives once, in order, across origins with the token.
func TestBrowserEmbedSSE(t *testing.T) {
	t.Parallel()
	ctx, sys, run := moduleOnAnotherOrigin(t, `{"steps":10,"step_ms":30}`)
	run(`transport: "sse"`, `window.__sse = { seqs: [], states: [], end: "" };
		w.watch(id, { afterSeq: 0, onEvent: (ev) => window.__sse.seqs.push(ev.seq),
			onEnd: (ev) => { window.__sse.end = ev.status; }, onState: (s) => window.__sse.states.push(s) });
		w.watch("01ZZZZZZZZZZZZZZZZZZZZZZZZ", { onState: (s) => window.__sse.states.push("unknown " + s) });`)
	type sseState struct {
		Seqs   []uint64 `json:"seqs"`
		States []string `json:"states"`
		End    string   `json:"end"`
	}
	st := waitJS(t, ctx, "the job's end over SSE", "window.__sse", func(s sseState) bool {
		return s.End == "succeeded" && slices.Contains(s.States, "unknown not_found")
	})
	checkExact(t, st.Seqs, 1)
	waitUntil(t, eventWait, "the stream to end with the job", func() bool { return sys.GW.Live().Stats().Sessions == 0 })
}

// TestBrowserEmbedFallsBackToSSE reaches the gateway through a proxy that
// refuses WebSockets: the module follows the job over SSE instead.
func TestBrowserEmbedFallsBackToSSE(t *testing.T) {
	t.Parallel()
	noWebSockets := func(gw string) string {
		target, _ := url.Parse(gw)
		proxy := httputil.NewSingleHostReverseProxy(target)
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/ws" {
				http.Error(w, "no WebSockets here", http.StatusForbidden)
				return
			}
			proxy.ServeHTTP(w, r)
		}))
		t.Cleanup(hs.Close)
		return hs.URL
	}
	ctx, sys, run := moduleOnAnotherOrigin(t, `{"steps":10,"step_ms":30}`, noWebSockets)
	run("", `window.__auto = { seqs: [], states: [] };
		w.watch(id, { afterSeq: 0, onEvent: (ev) => window.__auto.seqs.push(ev.seq), onState: (s) => window.__auto.states.push(s) });`)
	type autoState struct {
		Seqs   []uint64 `json:"seqs"`
		States []string `json:"states"`
	}
	st := waitJS(t, ctx, "the job's end over the fallback", "window.__auto", func(s autoState) bool {
		return slices.Contains(s.States, "ended")
	})
	checkExact(t, st.Seqs, 1)
	if n := acceptedWebSockets(t, sys); n != 0 {
		t.Errorf("the gateway accepted %v WebSockets through a proxy that refuses them", n)
	}
	t.Logf("states: %v", st.States)
}

// TestBrowserEmbedWatchesOfOneJob watches one job three times on one
// connection: from its start, then (mid-job) from now and from its start
// again. Each gets what it asked for once, in order, over one socket.
func TestBrowserEmbedWatchesOfOneJob(t *testing.T) {
	t.Parallel()
	ctx, sys, run := moduleOnAnotherOrigin(t, `{"steps":20,"step_ms":40}`)
	run("", `const got = window.__w = { first: [], now: [], again: [], ended: 0 };
		const onEnd = () => { got.ended++; };
		w.watch(id, { afterSeq: 0, onEnd, onEvent: (ev) => {
			got.first.push(ev.seq);
			if (got.first.length === 4) {
				w.watch(id, { onEnd, onEvent: (ev) => got.now.push(ev.seq) });
				w.watch(id, { afterSeq: 0, onEnd, onEvent: (ev) => got.again.push(ev.seq) });
			}
		} });`)
	type watches struct {
		First []uint64 `json:"first"`
		Now   []uint64 `json:"now"`
		Again []uint64 `json:"again"`
		Ended int      `json:"ended"`
	}
	most := 0
	got := waitJS(t, ctx, "three ends", "window.__w", func(w watches) bool {
		most = max(most, sys.GW.Live().Stats().Sessions)
		return w.Ended == 3
	})
	if n := acceptedWebSockets(t, sys); most != 1 || n != 1 {
		t.Errorf("the gateway held up to %d sessions and accepted %v WebSockets; want the page's one socket", most, n)
	}
	checkExact(t, got.First, 1)
	checkExact(t, got.Again, 1)
	last := got.First[len(got.First)-1]
	if len(got.Now) == 0 || got.Now[0] < 4 || !slices.IsSorted(got.Now) || len(slices.Compact(slices.Clone(got.Now))) != len(got.Now) || got.Now[len(got.Now)-1] != last {
		t.Errorf("the watch from now saw %v; want rising seqs from the 4th on, once each, to %d", got.Now, last)
	}
}

// moduleOnAnotherOrigin opens an empty page of another origin, submits a
// demo job with input as a user with a token, and returns run: it runs
// body in the page with w = connect({url, token, <opts>}) and the job's id
// in id. With front, the page reaches the gateway at front(gateway URL).
func moduleOnAnotherOrigin(t *testing.T, input string, front ...func(string) string) (context.Context, *testsys.System, func(opts, body string)) {
	t.Helper()
	ctx := newBrowser(t)
	e := newEmbedder(t)
	sys := embedSystem(t, e)
	token := testsys.Token(t, "alice", false, time.Hour)
	id := sys.As(token).Submit(t, "demo", input).ID
	gw := sys.URL
	for _, f := range front {
		gw = f(gw)
	}
	e.page(gw, "")
	navigate(t, ctx, e.URL)
	return ctx, sys, func(opts, body string) {
		t.Helper()
		js := `(async () => {
			const { connect } = await import("` + gw + `/static/jobwire.js");
			const w = connect({ url: "` + gw + `", token: "` + token + `", ` + opts + ` });
			const id = "` + id + `";
			` + body + `
			return true;
		})()`
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js, chromedp.EvalAwaitPromise)); err != nil {
			t.Fatal(err)
		}
	}
}
