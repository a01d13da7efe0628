package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jobwire/jobwire/internal/metrics/metricstest"
	"github.com/jobwire/jobwire/internal/testsys"
	"github.com/jobwire/jobwire/services/gateway/httpapi"
	"github.com/jobwire/jobwire/services/gateway/live"
	"github.com/jobwire/jobwire/services/runner/worker"
	"github.com/jobwire/jobwire/shared/jobs"
)

// loggerType logs lines lines of size bytes, pausing every 10 lines: each
// line is its own event, so a job has many distinct events.
func loggerType(lines, size int, pause time.Duration) worker.JobType {
	return worker.JobType{
		Name: "logger", Description: "logs lines",
		Handler: func(ctx context.Context, job *worker.Job) (any, error) {
			pad := strings.Repeat("x", size)
			for i := 1; i <= lines; i++ {
				job.Progress.Log(fmt.Sprintf("line %d %s", i, pad))
				if i%10 == 0 {
					time.Sleep(pause)
				}
			}
			return nil, nil
		},
	}
}

// readAll reads events of job id until the terminal one, returning them.
func readSeqs(t *testing.T, w *wsClient, id string, until func(serverMsg) bool) []uint64 {
	t.Helper()
	var seqs []uint64
	for {
		m := w.read()
		if m.Op != "event" || m.JobID != id {
			t.Fatalf("unexpected %+v", m)
		}
		seqs = append(seqs, m.Event.Seq)
		if until(m) {
			return seqs
		}
	}
}

func checkExact(t *testing.T, seqs []uint64, from uint64) {
	t.Helper()
	for i, s := range seqs {
		if s != from+uint64(i) {
			t.Fatalf("position %d has seq %d, want %d (gap or duplicate); got %v", i, s, from+uint64(i), seqs)
		}
	}
}

func TestReplayThenLiveWithoutGapsOrDuplicates(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithTypes(loggerType(600, 10, 5*time.Millisecond)))
	snap := sys.Submit(t, "logger", `{}`)
	// Start watching from the beginning while the job is producing events.
	for deadline := time.Now().Add(20 * time.Second); ; {
		s, _ := sys.Get(t, snap.ID)
		if s.Seq > 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("job did not get going")
		}
		time.Sleep(5 * time.Millisecond)
	}
	ws := dialWS(t, sys)
	ws.send(`{"op":"watch","job_id":"` + snap.ID + `","after_seq":0}`)
	seqs := readSeqs(t, ws, snap.ID, func(m serverMsg) bool { return m.Event.Status.Terminal() })
	checkExact(t, seqs, 1)
	final, _ := sys.Get(t, snap.ID)
	if seqs[len(seqs)-1] != final.Seq || len(seqs) < 100 {
		t.Fatalf("got %d events ending at %d; the job ended at %d", len(seqs), seqs[len(seqs)-1], final.Seq)
	}
}

func TestResumeAfterDisconnect(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithTypes(loggerType(300, 10, 5*time.Millisecond)))
	snap := sys.Submit(t, "logger", `{}`)
	first := dialWS(t, sys)
	first.send(`{"op":"watch","job_id":"` + snap.ID + `","after_seq":0}`)
	seqs := readSeqs(t, first, snap.ID, func(m serverMsg) bool { return m.Event.Seq >= 40 })
	_ = first.c.CloseNow() // the network drops

	second := dialWS(t, sys)
	last := seqs[len(seqs)-1]
	second.send(fmt.Sprintf(`{"op":"watch","job_id":"%s","after_seq":%d}`, snap.ID, last))
	rest := readSeqs(t, second, snap.ID, func(m serverMsg) bool { return m.Event.Status.Terminal() })
	checkExact(t, append(seqs, rest...), 1)
}

func TestWatchAfterSeqAtTheEndWaitsForNewEvents(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t)
	snap := sys.Submit(t, "demo", `{"steps":1,"step_ms":0}`)
	final := sys.WaitStatus(t, snap.ID, jobs.StatusSucceeded, 20*time.Second)
	ws := dialWS(t, sys)
	ws.send(fmt.Sprintf(`{"op":"watch","job_id":"%s","after_seq":%d}`, snap.ID, final.Seq))
	// Nothing is new: the next message is the answer to the next request.
	ws.send(`{"op":"watch","job_id":"*"}`)
	if m := ws.read(); m.Op != "error" || m.Code != "invalid_id" {
		t.Fatalf("got %+v, want only the error", m)
	}
}

func TestAgedOutHistoryGivesTruncatedSnapshot(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithTypes(loggerType(40, 10, 0)), testsys.WithConfig(func(c *httpapi.Config) { c.EventsMaxPerJob = 10 }))
	snap := sys.Submit(t, "logger", `{}`)
	final := sys.WaitStatus(t, snap.ID, jobs.StatusSucceeded, 20*time.Second)
	ws := dialWS(t, sys)
	ws.send(`{"op":"watch","job_id":"` + snap.ID + `","after_seq":1}`)
	_, b, err := ws.next()
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Op        string     `json:"op"`
		Truncated bool       `json:"truncated"`
		Event     jobs.Event `json:"event"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.Op != "event" || !m.Truncated || m.Event.Seq != final.Seq || m.Event.Status != jobs.StatusSucceeded {
		t.Fatalf("got %s, want the final snapshot marked truncated", b)
	}
}

// A client that stops reading never slows the others; it is closed as too
// slow, and can resume where it was.
func TestStalledClientDoesNotSlowOthers(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithTypes(loggerType(1000, 16<<10, time.Millisecond)),
		testsys.WithConfig(func(c *httpapi.Config) { c.WriteTimeout = time.Second }))
	snap := sys.Submit(t, "logger", `{}`)
	stalled := dialTinyWS(t, sys)
	stalled.send(`{"op":"watch","job_id":"` + snap.ID + `","after_seq":0}`)
	live := dialWS(t, sys)
	live.send(`{"op":"watch","job_id":"` + snap.ID + `","after_seq":0}`)
	seqs := readSeqs(t, live, snap.ID, func(m serverMsg) bool { return m.Event.Status.Terminal() })
	checkExact(t, seqs, 1)

	// The stalled client is dropped by the gateway...
	deadline := time.Now().Add(30 * time.Second)
	for sys.GW.Live().Stats().Sessions > 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the stalled client was never closed (%d sessions)", sys.GW.Live().Stats().Sessions)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// ...and what it had received before resumes cleanly.
	got := stalled.seqsUntilClosed(-1, httpapi.CloseTooSlow) // -1: cut without a close frame
	if len(got) > 0 {
		checkExact(t, got, 1)
	}
	var after uint64
	if len(got) > 0 {
		after = got[len(got)-1]
	}
	again := dialWS(t, sys)
	again.send(fmt.Sprintf(`{"op":"watch","job_id":"%s","after_seq":%d}`, snap.ID, after))
	rest := readSeqs(t, again, snap.ID, func(m serverMsg) bool { return m.Event.Status.Terminal() })
	checkExact(t, append(got, rest...), 1)
	// The session is counted as it ends, which may be just after the
	// client saw its socket cut: wait (bounded) for the figure.
	waitMetrics(t, sys, "one session closed as too slow", func(m metricstest.Families) (bool, string) {
		n := m.Value("jobwire_gateway_sessions_closed_total", "reason", "too_slow")
		return n == 1, fmt.Sprintf("%v counted", n)
	})
}

// dialTinyWS dials with a 4 KiB socket receive buffer, so a client that
// stops reading stalls the server's writes quickly.
func dialTinyWS(t *testing.T, sys *testsys.System) *wsClient {
	t.Helper()
	// One deadline for the whole conversation: generous, for loaded CI machines.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	dialer := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}
	hc := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}, Jar: sys.HTTPClient().Jar}
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(sys.URL, "http")+"/ws", &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return &wsClient{t: t, c: c, ct: ctx}
}

// floodRequests sends n watch requests for invalid ids (each answered by
// an error) without reading, on its own goroutine; the channel gets the
// first write error, or nil once all are sent.
func floodRequests(w *wsClient, n int) <-chan error {
	done := make(chan error, 1)
	long := strings.Repeat("x", 2*jobs.MaxIDLen) // echoed in the answer, so answers are big
	go func() {
		for i := range n {
			msg := fmt.Sprintf(`{"op":"watch","job_id":"%d.%s"}`, i, long)
			if err := w.c.Write(w.ct, websocket.MessageText, []byte(msg)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	return done
}

// answersWaitingAtLeast reports whether some session of n has at least
// max answers waiting to be written, or n has no session left.
func answersWaitingAtLeast(n *live.Node, max int) bool {
	st := n.Stats()
	return st.Sessions == 0 || st.MostControlWaiting >= max
}

// A client that sends many requests before reading any answer is slowed
// down, not closed: once it reads, it gets every answer.
func TestRequestsFasterThanAnswersAreAllAnswered(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner(), testsys.WithSendBuffer(4096))
	ws := dialTinyWS(t, sys)
	const n = 1500 // the 1,000 watches and more
	sent := floodRequests(ws, n)
	deadline := time.Now().Add(30 * time.Second)
	for !answersWaitingAtLeast(sys.GW.Live(), live.MaxControl) {
		if time.Now().After(deadline) {
			t.Fatalf("the answers never filled the queue (%d wait at most)", live.MaxControl)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i := range n {
		_, b, err := ws.c.Read(ws.ct)
		if err != nil {
			t.Fatalf("answer %d of %d: %v", i+1, n, err)
		}
		var m serverMsg
		if err := json.Unmarshal(b, &m); err != nil || m.Op != "error" || m.Code != "invalid_id" || !strings.HasPrefix(m.JobID, fmt.Sprint(i, ".")) {
			t.Fatalf("answer %d: %q, want invalid_id for request %d", i+1, b, i)
		}
	}
	if err := <-sent; err != nil {
		t.Fatalf("sending: %v", err)
	}
}

// A client that sends requests and never reads is still closed as too slow.
func TestRequestsWithoutReadingAreClosedAsTooSlow(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner(), testsys.WithSendBuffer(4096), testsys.WithConfig(func(c *httpapi.Config) { c.WriteTimeout = 300 * time.Millisecond }))
	ws := dialTinyWS(t, sys)
	sent := floodRequests(ws, 100000)
	deadline := time.Now().Add(30 * time.Second)
	for sys.GW.Live().Stats().Sessions > 0 {
		if time.Now().After(deadline) {
			t.Fatal("a client that never reads was never closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	ws.c.CloseNow()
	<-sent
}
