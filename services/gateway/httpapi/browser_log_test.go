package httpapi_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jobwire/jobwire/internal/testsys"
	"github.com/jobwire/jobwire/services/gateway/httpapi"
	"github.com/jobwire/jobwire/services/runner/worker"
	"github.com/jobwire/jobwire/shared/jobs"
)

// The job page shows a job's whole stored log, from its first line, however
// late it is opened and however often it reconnects.

// gatedLoggerType logs "line 1" … "line <before>", waits until gate is
// closed, then logs the lines up to "line <before+after>".
func gatedLoggerType(before, after int, gate <-chan struct{}) worker.JobType {
	return worker.JobType{
		Name: "gated-logger", Description: "logs lines, pausing half-way until told to go on",
		Handler: func(ctx context.Context, job *worker.Job) (any, error) {
			for i := 1; i <= before+after; i++ {
				if i == before+1 {
					select {
					case <-gate:
					case <-ctx.Done():
						return nil, ctx.Err()
					}
				}
				job.Progress.Log(fmt.Sprintf("line %d", i))
			}
			return nil, nil
		},
	}
}

var logLineNumber = regexp.MustCompile(`line (\d+)\s*$`)

// logNumbers is the number of each "line N" the page's log shows, in order;
// -1 for any other line.
func logNumbers(lines []string) []int {
	out := make([]int, len(lines))
	for i, l := range lines {
		out[i] = -1
		if m := logLineNumber.FindStringSubmatch(l); m != nil {
			out[i], _ = strconv.Atoi(m[1])
		}
	}
	return out
}

// showsLines reports whether the page's log is exactly "line 1" … "line n".
func showsLines(p pageState, n int) bool {
	got := logNumbers(p.Log)
	want := make([]int, n)
	for i := range want {
		want[i] = i + 1
	}
	return slices.Equal(got, want)
}

// checkWholeLog fails unless the page's log is exactly "line 1" … "line n",
// each once.
func checkWholeLog(t *testing.T, p pageState, n int) {
	t.Helper()
	if !showsLines(p, n) {
		t.Fatalf("the log shows lines %v; want 1 to %d, each once, in order\nlog: %q", logNumbers(p.Log), n, p.Log)
	}
}

// TestBrowserReloadShowsWholeLog reloads a running job's page: the page
// shows the log from its first line, not only the lines after the reload.
func TestBrowserReloadShowsWholeLog(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	gate := make(chan struct{})
	sys := testsys.Start(t, testsys.WithTypes(gatedLoggerType(20, 20, gate)))
	id := sys.Submit(t, "gated-logger", `{}`).ID
	shareSession(t, ctx, sys)

	if err := chromedp.Do(ctx, chromedp.Navigate(sys.URL+"/jobs/"+id)); err != nil {
		t.Fatal(err)
	}
	waitPage(t, ctx, "the first 20 log lines", func(p pageState) bool {
		return p.Status == "running" && showsLines(p, 20)
	})
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	p := waitPage(t, ctx, "the first 20 log lines after the reload", func(p pageState) bool {
		return p.Conn == "live" && p.Status == "running" && len(p.Log) >= 20
	})
	checkWholeLog(t, p, 20)
	screenshot(t, ctx, "reloaded.png")

	close(gate)
	p = waitPage(t, ctx, "the job to succeed", func(p pageState) bool { return p.Status == "succeeded" })
	checkWholeLog(t, p, 40)
}

// TestBrowserFinishedJobShowsWholeLog opens a finished job's page: it shows
// every log line the job wrote, not "no log lines yet".
func TestBrowserFinishedJobShowsWholeLog(t *testing.T) {
	t.Parallel()
	p := openFinishedLogger(t, testsys.Start(t, testsys.WithTypes(loggerType(30, 0, 0))))
	checkWholeLog(t, p, 30)
}

// openFinishedLogger runs a "logger" job on sys to its end, then opens its
// page and returns what the page shows once it has finished loading.
func openFinishedLogger(t *testing.T, sys *testsys.System) pageState {
	t.Helper()
	ctx := newBrowser(t)
	id := sys.Submit(t, "logger", `{}`).ID
	sys.WaitStatus(t, id, jobs.StatusSucceeded, 20*time.Second)
	shareSession(t, ctx, sys)
	if err := chromedp.Do(ctx, chromedp.Navigate(sys.URL+"/jobs/"+id)); err != nil {
		t.Fatal(err)
	}
	return waitPage(t, ctx, "the final state", func(p pageState) bool {
		return p.Status == "succeeded" && p.Conn == "finished"
	})
}

// TestBrowserReconnectShowsLogOnce cuts the page's connection while the job
// logs: after reconnecting the page shows every line once.
func TestBrowserReconnectShowsLogOnce(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	gate := make(chan struct{})
	sys := testsys.Start(t, testsys.WithTypes(gatedLoggerType(20, 200, gate)))
	px := newCutProxy(t, sys.URL)
	id := sys.Submit(t, "gated-logger", `{}`).ID
	shareSession(t, ctx, sys)

	if err := chromedp.Do(ctx, chromedp.Navigate(px.URL+"/jobs/"+id)); err != nil {
		t.Fatal(err)
	}
	waitPage(t, ctx, "the first 20 log lines", func(p pageState) bool {
		return p.Conn == "live" && showsLines(p, 20)
	})
	px.setDown(true)
	waitPage(t, ctx, "the page to notice the cut", func(p pageState) bool { return p.Conn == "reconnecting…" })
	close(gate) // the job logs on while the page is cut off and reconnects
	px.setDown(false)
	p := waitPage(t, ctx, "the job to succeed after reconnecting", func(p pageState) bool {
		return p.Status == "succeeded"
	})
	checkWholeLog(t, p, 220)
}

// TestBrowserExpiredLogSaysSo opens a finished job whose first events have
// expired: the page shows the final state and says lines are missing.
func TestBrowserExpiredLogSaysSo(t *testing.T) {
	t.Parallel()
	p := openFinishedLogger(t, testsys.Start(t, testsys.WithTypes(loggerType(40, 0, 0)), testsys.WithConfig(func(c *httpapi.Config) { c.EventsMaxPerJob = 10 })))
	if len(p.Log) == 0 || p.Log[0] != "… earlier log lines are no longer stored" {
		t.Fatalf("log = %q; want it to start by saying earlier lines are no longer stored", p.Log)
	}
}
