package live

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/natstest"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go/jetstream"
)

// testBundle is what live's tests work with: a real NATS server with the
// job streams, and a node on it.
type testBundle struct {
	js      jetstream.JetStream
	streams *jobs.Streams
	node    *Node
}

// setup starts a NATS server with the streams and a node (whose Jobs
// reader is nil: tests that use it bring their own); all stop when the
// test ends.
func setup(t *testing.T) *testBundle {
	t.Helper()
	nc := natstest.Connect(t, natstest.Server(t))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	streams, err := jobs.Topology{EventsMaxAge: time.Hour, EventsMaxPerJob: 1000}.CreateOrUpdate(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	node := NewNode(nc, nil, nil, slog.New(slog.DiscardHandler))
	t.Cleanup(func() {
		node.CloseAll()
		node.Wait()
	})
	return &testBundle{js: js, streams: streams, node: node}
}

// storeJob submits a job and stores its next events with these statuses,
// as its runner would; it returns the job's id.
func (tb *testBundle) storeJob(t *testing.T, statuses ...jobs.Status) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	now := time.Now().UTC()
	ev, err := jobs.Enqueue(ctx, tb.js, jobs.Request{ID: jobs.NewID(now), Type: "demo", CreatedAt: now, Owner: "user:test"})
	if err != nil {
		t.Fatal(err)
	}
	_, seq, err := jobs.LastEvent(ctx, tb.streams.Events, ev.JobID)
	if err != nil {
		t.Fatal(err)
	}
	for _, status := range statuses {
		kind := jobs.KindProgress
		switch {
		case status == jobs.StatusSucceeded:
			kind = jobs.KindSucceeded
		case ev.Status == jobs.StatusQueued:
			kind = jobs.KindStarted
		}
		ev = ev.Next(kind, time.Now())
		ev.Status = status
		if seq, err = jobs.PublishEvent(ctx, tb.js, ev, seq); err != nil {
			t.Fatal(err)
		}
	}
	return ev.JobID
}

// A replay resends nothing up to after_seq: tested on the replay alone,
// without the outbox's per-job dedup (which would hide a replay that
// starts one too early).
func TestReplayStartsAfterAfterSeq(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	id := tb.storeJob(t, jobs.StatusRunning, jobs.StatusRunning, jobs.StatusSucceeded)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for after := range uint64(4) {
		box := newOutbox(func(error) {})
		box.startReplay(id) // the job's queue, with nothing seen yet
		if _, _, _, err := tb.node.replay(ctx, box, id, after, 0); err != nil {
			t.Fatal(err)
		}
		box.endReplay(id)
		var seqs []uint64
		for m, ok := box.next(); ok; m, ok = box.next() {
			seqs = append(seqs, m.seq)
		}
		if len(seqs) != int(4-after) || seqs[0] != after+1 {
			t.Fatalf("replay after seq %d sent seqs %v, want %d..4", after, seqs, after+1)
		}
	}
}
