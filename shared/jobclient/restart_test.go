package jobclient_test

import (
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/natstest"
	"github.com/jobwire/jobwire/services/runner/worker"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
)

// A watch survives a restart of the NATS server in the middle of the job:
// it yields every event once, in order, to the end.
func TestWatchAcrossServerRestart(t *testing.T) {
	t.Parallel()
	srv := natstest.NewRestartable(t)
	connect := func(name string) *nats.Conn {
		t.Helper()
		nc, err := nats.Connect(srv.URL(), nats.Name(name),
			nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond), nats.ReconnectJitter(0, 0))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	// A short ack wait, so a job message whose ack was lost in the outage
	// comes back soon.
	startRunner(t, connect("runner"), worker.Config{AckWait: 2 * time.Second, ShutdownGrace: time.Second})
	nc := connect("watcher")
	c := newClient(t, nc)
	ctx := testContext(t, 60*time.Second)

	queued, err := c.Submit(ctx, "demo", map[string]int{"steps": 100, "step_ms": 30})
	if err != nil {
		t.Fatal(err)
	}
	var (
		got          []jobs.Event
		restartedAt  time.Time
		beforeOutage int // events yielded before the restart
	)
	for ev, err := range c.Watch(ctx, queued.JobID, 0) {
		if err != nil {
			t.Fatalf("watch ended with %v after seqs %v", err, seqs(got))
		}
		got = append(got, ev)
		if restartedAt.IsZero() && ev.Kind == jobs.KindProgress {
			// Mid-job: restart the server on the same port and storage.
			restartedAt = time.Now()
			beforeOutage = len(got)
			srv.Restart()
		}
	}

	final, err := c.Get(ctx, queued.JobID)
	if err != nil {
		t.Fatal(err)
	}
	checkRun(t, got, 1, final.Seq)
	if restartedAt.IsZero() {
		t.Fatal("the job had no progress event: the server was never restarted")
	}
	last := got[len(got)-1]
	if last.Status != jobs.StatusSucceeded {
		t.Fatalf("job ended %s: %+v", last.Status, last.Error)
	}
	if !last.Time.After(restartedAt) || len(got) == beforeOutage {
		t.Fatalf("the job ended before the restart (at %v, restart at %v): the test proves nothing", last.Time, restartedAt)
	}
	if nc.Stats().Reconnects == 0 {
		t.Fatal("the watcher's connection never reconnected")
	}
	t.Logf("%d events, restart after seq %d, attempts %d", len(got), got[beforeOutage-1].Seq, last.Attempt)
}
