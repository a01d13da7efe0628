package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/natstest"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestTopologyAndEventsOnNATS(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s := natstest.Server(t)
	nc := natstest.Connect(t, s)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := (jobs.Topology{}).CreateOrUpdate(ctx, js); err != nil {
		t.Fatalf("CreateOrUpdate: %v", err)
	}
	streams, err := jobs.Topology{}.CreateOrUpdate(ctx, js)
	if err != nil {
		t.Fatalf("second CreateOrUpdate: %v", err)
	}
	for name, got := range map[string]string{
		jobs.QueueStream:       streams.Queue.CachedInfo().Config.Name,
		jobs.EventsStream:      streams.Events.CachedInfo().Config.Name,
		jobs.TypesBucket:       streams.Types.Bucket(),
		jobs.IdempotencyBucket: streams.Idempotency.Bucket(),
	} {
		if got != name {
			t.Errorf("handle for %s is %s", name, got)
		}
	}
	// Stream subjects overlapping would have failed CreateOrUpdate; also
	// check the server kept the subjects we asked for.
	if got := streams.Events.CachedInfo().Config.Subjects; len(got) != 1 || got[0] != jobs.AllEvents {
		t.Errorf("events stream subjects = %q, want [%q]", got, jobs.AllEvents)
	}

	msgs := func() uint64 {
		t.Helper()
		info, err := streams.Events.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}

	id := jobs.NewID(time.Now())
	now := time.Date(2025, 3, 14, 9, 39, 26, 123456789, time.UTC)
	queued := jobs.Event{JobID: id, Type: "demo", Seq: 1, Kind: jobs.KindQueued, Status: jobs.StatusQueued, Time: now, CreatedAt: &now}

	seq1, err := jobs.PublishEvent(ctx, js, queued, 0)
	if err != nil {
		t.Fatalf("first PublishEvent: %v", err)
	}
	if seq1 != 1 {
		t.Fatalf("first event stored at stream sequence %d, want 1", seq1)
	}

	// A second writer that believes the job has no events yet loses.
	rival := queued.Next(jobs.KindStarted, now.Add(time.Second))
	_, err = jobs.PublishEvent(ctx, js, rival, 0)
	if err == nil {
		t.Fatal("PublishEvent with last sequence 0 on a job that has events succeeded")
	}
	if !jobs.IsWrongLastSequence(err) {
		t.Fatalf("IsWrongLastSequence(%v) = false, want true", err)
	}

	started := queued.Next(jobs.KindStarted, now.Add(time.Second))
	started.Status, started.Attempt, started.Percent = jobs.StatusRunning, 1, jobs.Percentage(0)
	seq2, err := jobs.PublishEvent(ctx, js, started, seq1)
	if err != nil {
		t.Fatalf("PublishEvent with the right last sequence: %v", err)
	}
	if seq2 <= seq1 {
		t.Fatalf("second event stored at sequence %d, not after %d", seq2, seq1)
	}

	// The fence is per job: another job starts at 0 although the stream
	// has messages, and does not move the first job's last sequence.
	other := jobs.Event{JobID: jobs.NewID(time.Now()), Seq: 1, Kind: jobs.KindQueued, Status: jobs.StatusQueued, Time: now}
	if _, err := jobs.PublishEvent(ctx, js, other, 0); err != nil {
		t.Fatalf("PublishEvent of another job with last sequence 0: %v", err)
	}
	// A stale writer (it saw seq1, but seq2 is stored) loses too.
	if _, err := jobs.PublishEvent(ctx, js, started.Next(jobs.KindProgress, now.Add(2*time.Second)), seq1); !jobs.IsWrongLastSequence(err) {
		t.Fatalf("PublishEvent with a stale last sequence: err = %v, want a wrong-last-sequence error", err)
	}

	last, lastSeq, err := jobs.LastEvent(ctx, streams.Events, id)
	if err != nil {
		t.Fatalf("LastEvent: %v", err)
	}
	if lastSeq != seq2 {
		t.Errorf("LastEvent sequence = %d, want %d", lastSeq, seq2)
	}
	if got, want := mustJSON(t, last), mustJSON(t, started); got != want {
		t.Errorf("LastEvent = %s\nwant        %s", got, want)
	}

	if _, _, err := jobs.LastEvent(ctx, streams.Events, jobs.NewID(time.Now())); !errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("LastEvent of an unknown id: err = %v, want ErrNotFound", err)
	}
	for _, bad := range []string{"a.b", "*", ">", ""} {
		if _, _, err := jobs.LastEvent(ctx, streams.Events, bad); !errors.Is(err, jobs.ErrInvalidID) {
			t.Errorf("LastEvent(%q): err = %v, want ErrInvalidID", bad, err)
		}
	}

	before := msgs()
	if before != 3 {
		t.Fatalf("events stream holds %d messages, want 3", before)
	}
	for _, bad := range []string{"a.b", "*", ">", "", "a b"} {
		ev := queued
		ev.JobID = bad
		for _, lastSeq := range []uint64{0, seq2} {
			if _, err := jobs.PublishEvent(ctx, js, ev, lastSeq); !errors.Is(err, jobs.ErrInvalidID) {
				t.Errorf("PublishEvent with job id %q: err = %v, want ErrInvalidID", bad, err)
			}
		}
	}
	if after := msgs(); after != before {
		t.Errorf("events stream holds %d messages after rejected publishes, want %d", after, before)
	}
}

func TestIsWrongLastSequenceOtherErrors(t *testing.T) {
	t.Parallel()
	for _, err := range []error{
		nil,
		errors.New("wrong last sequence"),
		jobs.ErrNotFound,
		&jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamNotFound, Code: 404},
	} {
		if jobs.IsWrongLastSequence(err) {
			t.Errorf("IsWrongLastSequence(%v) = true", err)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// Subscribers of jobs.<id>.progress see exactly the stored events, in
// order: a fenced write that the stream refused never reaches them.
func TestProgressSubscribersSeeOnlyStoredEvents(t *testing.T) {
	t.Parallel()
	ctx, nc, js, _ := withTopology(t)
	id := jobs.NewID(time.Now())
	sub, err := nc.SubscribeSync(jobs.AllProgress)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	queued := jobs.Request{ID: id, Type: "demo", CreatedAt: time.Now()}.Queued()
	seq1, err := jobs.PublishEvent(ctx, js, queued, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A zombie writer that lost the race: refused, so nobody may see it.
	zombie := queued.Next(jobs.KindFailed, time.Now())
	zombie.Status = jobs.StatusFailed
	if _, err := jobs.PublishEvent(ctx, js, zombie, 0); !jobs.IsWrongLastSequence(err) {
		t.Fatalf("the losing write: %v, want wrong last sequence", err)
	}
	started := queued.Next(jobs.KindStarted, time.Now())
	started.Status = jobs.StatusRunning
	if _, err := jobs.PublishEvent(ctx, js, started, seq1); err != nil {
		t.Fatal(err)
	}

	var got []string
	for {
		m, err := sub.NextMsg(500 * time.Millisecond)
		if err != nil {
			break
		}
		var ev jobs.Event
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatalf("%s: %v", m.Subject, err)
		}
		if m.Subject != jobs.ProgressSubject(id) || ev.JobID != id {
			t.Fatalf("event of %s on %s", ev.JobID, m.Subject)
		}
		got = append(got, fmt.Sprintf("%d %s", ev.Seq, ev.Kind))
	}
	if want := []string{"1 queued", "2 started"}; !slices.Equal(got, want) {
		t.Fatalf("subscriber saw %q, want %q", got, want)
	}
}

// Enqueue with its answers lost on the way back (the writes were stored):
// it tries once more, learns that they landed, and reports the job as
// accepted; the job has one owner record, one queued event and one request.
func TestEnqueueSurvivesLostAnswers(t *testing.T) {
	t.Parallel()
	ctx, _, js, streams := withTopology(t)
	for lose := int64(1); lose <= 3; lose++ { // the owner record's answer; then the queued event's; then the request's too
		lossy := &natstest.LostAnswers{Publisher: js}
		lossy.Lose.Store(lose)
		req := jobs.Request{ID: jobs.NewID(time.Now()), Type: fmt.Sprintf("lossy%d", lose), CreatedAt: time.Now()}
		queued, err := jobs.Enqueue(ctx, lossy, req)
		if err != nil {
			t.Fatalf("%d answers lost: %v", lose, err)
		}
		last, _, err := jobs.LastEvent(ctx, streams.Events, req.ID)
		if err != nil || last.Seq != 1 || last.Kind != jobs.KindQueued || !last.Time.Equal(queued.Time) {
			t.Fatalf("%d answers lost: state %+v, %v; want the one queued event", lose, last, err)
		}
		info, err := streams.Queue.Info(ctx, jetstream.WithSubjectFilter(jobs.QueueSubject(req.Type)))
		if err != nil {
			t.Fatal(err)
		}
		if n := info.State.Subjects[jobs.QueueSubject(req.Type)]; n != 1 {
			t.Fatalf("%d answers lost: %d requests stored, want 1", lose, n)
		}
		m, err := streams.Queue.GetLastMsgForSubject(ctx, jobs.QueueSubject(req.Type))
		if err != nil {
			t.Fatal(err)
		}
		var stored jobs.Request
		queuedLost := lose >= 2
		if err := json.Unmarshal(m.Data, &stored); err != nil || stored.ID != req.ID || (stored.QueuedSeq == 0) != queuedLost {
			t.Fatalf("%d answers lost: request %s (%v); want queued_seq left out only if its answer was lost", lose, m.Data, err)
		}
		if owner, err := jobs.ReadOwner(ctx, streams.Records, req.ID); err != nil || owner.Type != req.Type {
			t.Fatalf("%d answers lost: owner record %+v, %v", lose, owner, err)
		}
	}
}

// withTopology starts a NATS server with jobwire's streams and returns a
// context bounded by the test, a connection and its JetStream.
func withTopology(t testing.TB) (context.Context, *nats.Conn, jetstream.JetStream, *jobs.Streams) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	nc := natstest.Connect(t, natstest.Server(t))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	streams, err := (jobs.Topology{}).CreateOrUpdate(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, nc, js, streams
}
