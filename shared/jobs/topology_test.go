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
		jobs.Stream:            streams.Events.CachedInfo().Config.Name,
		jobs.TypesBucket:       streams.Types.Bucket(),
		jobs.IdempotencyBucket: streams.Idempotency.Bucket(),
	} {
		if got != name {
			t.Errorf("handle for %s is %s", name, got)
		}
	}
	// Stream subjects overlapping would have failed CreateOrUpdate; also
	// check the server kept the subjects we asked for.
	if want := []string{jobs.AllQueue, jobs.AllQueueHigh, jobs.AllQueueLow, jobs.AllSched, jobs.AllEvents}; !slices.Equal(streams.Events.CachedInfo().Config.Subjects, want) {
		t.Errorf("stream subjects = %q, want %q", streams.Events.CachedInfo().Config.Subjects, want)
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
	other := jobs.Event{JobID: jobs.NewID(time.Now()), Type: "demo", Seq: 1, Kind: jobs.KindQueued, Status: jobs.StatusQueued, Time: now}
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
	ctx, nc, js, streams := withTopology(t)
	id := jobs.NewID(time.Now())
	sub, err := nc.SubscribeSync(jobs.AllProgress)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	queued, err := jobs.Enqueue(ctx, js, jobs.Request{ID: id, Type: "demo", CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	_, seq1, err := jobs.LastEvent(ctx, streams.Events, id)
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

// Enqueue with its answer lost on the way back (the request was stored):
// it tries once more, learns that it landed, and reports the job as
// accepted; the job has one request, which is its queued event and names
// its owner. A second job with the same id, of any type, is refused.
// EnqueueMany does the same for each job of a batch.
func TestEnqueueSurvivesLostAnswers(t *testing.T) {
	t.Parallel()
	ctx, _, js, streams := withTopology(t)
	check := func(what string, req jobs.Request) {
		t.Helper()
		last, _, err := jobs.LastEvent(ctx, streams.Events, req.ID)
		if err != nil || last.Seq != 1 || last.Kind != jobs.KindQueued || !last.Time.Equal(req.CreatedAt) {
			t.Fatalf("%s: state %+v, %v; want the queued request", what, last, err)
		}
		info, err := streams.Events.Info(ctx, jetstream.WithSubjectFilter(jobs.JobSubjects(req.ID)))
		if err != nil {
			t.Fatal(err)
		}
		if n := info.State.Subjects[jobs.QueueSubject(req.Type, req.ID)]; n != 1 || len(info.State.Subjects) != 1 {
			t.Fatalf("%s: stored %v, want one request", what, info.State.Subjects)
		}
		if owner, err := jobs.ReadOwner(ctx, streams.Events, req.ID); err != nil || owner.Type != req.Type || owner.Owner != req.Owner {
			t.Fatalf("%s: owner %+v, %v", what, owner, err)
		}
	}
	newReq := func(typ string) jobs.Request {
		return jobs.Request{ID: jobs.NewID(time.Now()), Type: typ, CreatedAt: time.Now().UTC(), Owner: "user:alice"}
	}
	lossy := &natstest.LostAnswers{Publisher: js}
	lossy.Lose.Store(1)
	req := newReq("lossy")
	if _, err := jobs.Enqueue(ctx, lossy, req); err != nil {
		t.Fatalf("answer lost: %v", err)
	}
	check("answer lost", req)
	dup := req
	dup.Type, dup.Owner = "other", "user:mallory"
	if _, err := jobs.Enqueue(ctx, js, dup); !errors.Is(err, jobs.ErrDuplicateID) {
		t.Fatalf("a second job with the same id: %v, want ErrDuplicateID", err)
	}
	check("after a duplicate", req)

	batch := []jobs.Request{newReq("a"), newReq("b"), req, newReq("c")}
	msgs := make([]*nats.Msg, len(batch))
	for i, r := range batch {
		var err error
		if msgs[i], err = jobs.RequestMsg(r); err != nil {
			t.Fatal(err)
		}
	}
	lossy.Lose.Store(2) // the first two answers of the batch
	errs := jobs.EnqueueMany(ctx, lossy, msgs)
	for i, r := range batch {
		if r.ID == req.ID {
			if !errors.Is(errs[i], jobs.ErrDuplicateID) {
				t.Errorf("batch item %d (an id that exists): %v, want ErrDuplicateID", i, errs[i])
			}
			continue
		}
		if errs[i] != nil {
			t.Fatalf("batch item %d: %v", i, errs[i])
		}
		check(fmt.Sprintf("batch item %d", i), r)
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
