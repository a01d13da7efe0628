package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/natstest"
	"github.com/jobwire/jobwire/internal/testsys"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
)

// The NATS server restarts twice while 100 watched jobs finish, and each
// time the jobs' events (final ones included) are stored before the
// gateway has reconnected and subscribed again, so they never reach it
// live. After each reconnect the gateway catches every watcher up: each
// WebSocket and SSE watcher sees every stored event through the final one.
func TestWatchersCatchUpAfterNATSRestarts(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a NATS server")
	}
	t.Parallel()
	const jobCount, sockets, sseCount = 100, 4, 10
	ns := natstest.NewRestartable(t)
	// The test's writer (the runners' part) reconnects at once; the
	// gateway's connection tries again only after 6 s, so the jobs surely
	// end while it is away, also on a slow machine.
	sys := testsys.StartOn(t, ns.Server(), testsys.WithoutRunner(), testsys.WithNATSOptions(nats.ReconnectWait(6*time.Second)))
	writer, err := nats.Connect(ns.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(writer.Close)

	ids := make([]string, jobCount)
	for i := range ids {
		ids[i] = sys.Submit(t, "demo", `{}`).ID
		appendEvent(t, writer, ids[i], jobs.KindStarted, jobs.StatusRunning)
	}
	// Every job on a WebSocket (25 per socket) from its start; the first
	// ten on SSE too.
	wss := make([]*wsClient, sockets)
	for i := range wss {
		wss[i] = dialWS(t, sys)
	}
	for i, id := range ids {
		wss[i%sockets].send(`{"op":"watch","job_id":"` + id + `","after_seq":0}`)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	type sseResult struct {
		id   string
		seqs []uint64
		err  error
	}
	sse := make(chan sseResult, sseCount)
	for _, id := range ids[:sseCount] {
		go func() {
			seqs, err := sseSeqs(ctx, sys, "/api/jobs/"+id+"/events?after_seq=0")
			sse <- sseResult{id, seqs, err}
		}()
	}
	seen := make([]map[string][]uint64, sockets)
	for i, ws := range wss {
		seen[i] = map[string][]uint64{}
		readWS(t, ws, seen[i], func() bool { return countSeq(seen[i], 2) == jobCount/sockets })
	}
	waitUntil(t, 10*time.Second, "every SSE stream opens", func() bool { return sys.GW.Live().Stats().Sessions == sockets+sseCount })

	// Each restart ends half of the jobs, before the gateway is back.
	for half, part := range [][]string{ids[:jobCount/2], ids[jobCount/2:]} {
		reconnects := sys.NC.Stats().Reconnects
		ns.Restart()
		for _, id := range part {
			appendUntilStored(t, writer, id, jobs.KindProgress, jobs.StatusRunning)
			appendUntilStored(t, writer, id, jobs.KindSucceeded, jobs.StatusSucceeded)
		}
		if sys.NC.Stats().Reconnects != reconnects {
			t.Fatalf("restart %d: the gateway reconnected before the jobs ended: the test proves nothing", half+1)
		}
		waitUntil(t, 30*time.Second, "the gateway reconnects", func() bool {
			return sys.NC.Stats().Reconnects > reconnects && sys.NC.IsConnected()
		})
	}

	for i, ws := range wss {
		readWS(t, ws, seen[i], func() bool { return countSeq(seen[i], 4) == jobCount/sockets })
		for id, seqs := range seen[i] {
			if !slices.Equal(seqs, []uint64{1, 2, 3, 4}) {
				t.Errorf("WebSocket %d, job %s: seqs %v, want 1..4", i, id, seqs)
			}
		}
	}
	for range sseCount {
		r := <-sse
		if r.err != nil || fmt.Sprint(r.seqs) != "[1 2 3 4]" {
			t.Errorf("SSE of job %s: seqs %v, %v; want 1..4", r.id, r.seqs, r.err)
		}
	}
}

// appendUntilStored is appendEvent, tried again while the restarted
// server is still loading its streams.
func appendUntilStored(t testing.TB, nc *nats.Conn, id string, kind jobs.Kind, status jobs.Status) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if err = tryAppendEvent(nc, id, kind, status); err == nil {
			return
		}
	}
	t.Fatalf("store event of job %s: %v", id, err)
}

// readWS reads events from ws into seen (seqs per job) until done, with a
// deadline of its own.
func readWS(t *testing.T, ws *wsClient, seen map[string][]uint64, done func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ws.ct, 30*time.Second)
	defer cancel()
	for !done() {
		_, b, err := ws.c.Read(ctx)
		if err != nil {
			t.Fatalf("reading (seen: %v): %v", seen, err)
		}
		var m serverMsg
		if err := json.Unmarshal(b, &m); err != nil || m.Op != "event" {
			t.Fatalf("unexpected %s", b)
		}
		seen[m.JobID] = append(seen[m.JobID], m.Event.Seq)
	}
}

// countSeq is how many jobs have reached seq.
func countSeq(seen map[string][]uint64, seq uint64) int {
	n := 0
	for _, seqs := range seen {
		if len(seqs) > 0 && seqs[len(seqs)-1] >= seq {
			n++
		}
	}
	return n
}
