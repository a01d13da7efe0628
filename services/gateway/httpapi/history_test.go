package httpapi_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/natstest"
	"github.com/jobwire/jobwire/internal/testsys"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// appendEvent stores the next event of job id on nc as its runner would,
// with the given kind and status.
func appendEvent(t testing.TB, nc *nats.Conn, id string, kind jobs.Kind, status jobs.Status) {
	t.Helper()
	if err := tryAppendEvent(nc, id, kind, status); err != nil {
		t.Fatal(err)
	}
}

func tryAppendEvent(nc *nats.Conn, id string, kind jobs.Kind, status jobs.Status) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	events, err := js.Stream(ctx, jobs.Stream)
	if err != nil {
		return err
	}
	last, streamSeq, err := jobs.LastEvent(ctx, events, id)
	if err != nil {
		return err
	}
	ev := last.Next(kind, time.Now())
	ev.Status = status
	_, err = jobs.PublishEvent(ctx, js, ev, streamSeq)
	return err
}

// sseSeqs reads an SSE stream to its end and returns the ids (seqs) of
// its events, or an error; for use off the test's goroutine.
func sseSeqs(ctx context.Context, sys *testsys.System, path string) ([]uint64, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", sys.URL+path, nil)
	resp, err := sys.HTTPClient().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: %d", path, resp.StatusCode)
	}
	var seqs []uint64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if s, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
			n, _ := strconv.ParseUint(s, 10, 64)
			seqs = append(seqs, n)
		}
	}
	return seqs, sc.Err()
}

// 5,000 replays in a row, by SSE and WebSocket, leave the events stream's
// consumer count where it was (no replay creates one), and replays keep
// working to the last.
func TestReplaysLeaveNoConsumers(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner())
	id := sys.Submit(t, "demo", `{}`).ID
	appendEvent(t, sys.NC, id, jobs.KindStarted, jobs.StatusRunning)
	appendEvent(t, sys.NC, id, jobs.KindSucceeded, jobs.StatusSucceeded)
	before := natstest.Consumers(t, sys.Streams.Events)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	ws := dialWS(t, sys)
	for i := range 5000 {
		if i%2 == 0 {
			seqs, err := sseSeqs(ctx, sys, "/api/jobs/"+id+"/events?after_seq=0")
			if err != nil || fmt.Sprint(seqs) != "[1 2 3]" {
				t.Fatalf("SSE replay %d: %v %v (consumers: %d, %d before)", i, seqs, err, natstest.Consumers(t, sys.Streams.Events), before)
			}
			continue
		}
		ws.send(`{"op":"watch","job_id":"` + id + `","after_seq":0}`)
		var seqs []uint64
		for _, ev := range ws.readUntilTerminal(id) {
			seqs = append(seqs, ev.Seq)
		}
		checkExact(t, seqs, 1)
		if i == 1 {
			if c := natstest.Consumers(t, sys.Streams.Events); c != before {
				t.Fatalf("%d consumers after a replay, %d before", c, before)
			}
		}
	}
	if c := natstest.Consumers(t, sys.Streams.Events); c != before {
		t.Fatalf("%d consumers after 5000 replays, %d before", c, before)
	}
}

// One connection that receives a job's events by two routes (the feed of
// every job and a watch of that job, as an admin) shows each event once:
// the outbox's per-job dedup, tested without any replay.
func TestTwoRoutesShowEachEventOnce(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner())
	admin := sys.As(testsys.Token(t, "root", true, time.Hour))
	id := admin.Submit(t, "demo", `{}`).ID
	ws := dialWS(t, admin)
	subs := sys.GW.Live().Stats().Subscriptions
	ws.send(`{"op":"watch_all"}`)
	ws.send(`{"op":"watch","job_id":"` + id + `"}`)
	waitUntil(t, 10*time.Second, "watch_all and the watch subscribe", func() bool { return sys.GW.Live().Stats().Subscriptions == subs+2 })
	if m := ws.read(); m.Op != "event" || m.Event.Seq != 1 {
		t.Fatalf("first message %+v, want the snapshot, seq 1", m)
	}
	for range 20 {
		appendEvent(t, sys.NC, id, jobs.KindProgress, jobs.StatusRunning)
	}
	appendEvent(t, sys.NC, id, jobs.KindSucceeded, jobs.StatusSucceeded)
	var seqs []uint64
	for _, ev := range ws.readUntilTerminal(id) { // fails on a repeated seq
		seqs = append(seqs, ev.Seq)
	}
	checkExact(t, seqs, 2)
}

// waitUntil polls ok until it holds, failing the test after d.
func waitUntil(t testing.TB, d time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !ok(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A job's first final event is its end: the events a compromised runner
// credential stores after it are not replayed, and not delivered live.
func TestNothingAfterTheFirstFinalEvent(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner())
	id := sys.Submit(t, "demo", `{}`).ID
	appendEvent(t, sys.NC, id, jobs.KindStarted, jobs.StatusRunning)
	ws := dialWS(t, sys)
	ws.send(`{"op":"watch","job_id":"` + id + `","after_seq":0}`)
	if seqs := readSeqs(t, ws, id, func(m serverMsg) bool { return m.Event.Seq == 2 }); len(seqs) != 2 {
		t.Fatalf("got %v, want 1, 2", seqs)
	}
	appendEvent(t, sys.NC, id, jobs.KindSucceeded, jobs.StatusSucceeded)
	appendEvent(t, sys.NC, id, jobs.KindProgress, jobs.StatusRunning)
	appendEvent(t, sys.NC, id, jobs.KindFailed, jobs.StatusFailed)
	if m := ws.read(); m.Event.Seq != 3 || m.Event.Status != jobs.StatusSucceeded {
		t.Fatalf("got %+v, want the final event, seq 3", m)
	}
	// Replays end at seq 3, and so does the live watch: a watch of another
	// job answers next, nothing of this one comes before it.
	ws.send(`{"op":"watch","job_id":"` + id + `","after_seq":0}`)
	checkExact(t, readSeqs(t, ws, id, func(m serverMsg) bool { return m.Event.Status.Terminal() }), 1)
	ws.send(`{"op":"watch","job_id":"` + id + `","after_seq":2}`)
	if m := ws.read(); m.Event.Seq != 3 {
		t.Fatalf("resume after 2: got %+v, want seq 3", m)
	}
	ws.send(`{"op":"watch","job_id":"` + strings.Repeat("0", 26) + `"}`)
	if m := ws.read(); m.Op != "error" || m.Code != "not_found" {
		t.Fatalf("got %+v, want not_found for the other job (and nothing after seq 3)", m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seqs, err := sseSeqs(ctx, sys, "/api/jobs/"+id+"/events?after_seq=0")
	if err != nil || fmt.Sprint(seqs) != "[1 2 3]" {
		t.Fatalf("SSE replay: %v %v", seqs, err)
	}
}
