package natsperm_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jobwire/jobwire/services/runner/jobtypes"
	"github.com/jobwire/jobwire/shared/jobclient"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestJobRunsWithRolePermissions runs a job through the whole system, each
// side as its own user: the gateway creates the topology, follows the job
// types, stores the job, and reads its state and history; the runner runs
// it; an observer follows it live and with jobclient. No side may hit a
// permissions violation on the way.
func TestJobRunsWithRolePermissions(t *testing.T) {
	t.Parallel()
	jobFlow(t, startServer(t))
}

// TestJobRunsWithAckFormatV2: the same with the ack and flow control
// subjects of ADR-15 v2 ($JS.ACK.<domain>.<account hash>.<stream>...),
// which a later nats-server will make the default.
func TestJobRunsWithAckFormatV2(t *testing.T) {
	t.Parallel()
	s := startServer(t, ackFormatV2)
	jobFlow(t, s)
	typesWatchFlow(t, s)
}

func ackFormatV2(o *server.Options) {
	o.FeatureFlags = map[string]bool{"js_ack_fc_v2": true}
}

func jobFlow(t *testing.T, s *server.Server) {
	gw := startGateway(t, s)
	ctx := testContext(t, 30*time.Second)

	// The catalog: a watch of the types bucket (initial values end with
	// nil), then the runner's registration arrives live.
	watch, err := gw.streams.Types.WatchAll(ctx)
	if err != nil {
		t.Fatalf("watch job types as gateway: %v", err)
	}
	for e := range watch.Updates() {
		if e == nil {
			break
		}
	}
	_, rn := startRunner(t, s)
	select {
	case e := <-watch.Updates():
		if e == nil || e.Key() != "demo" || e.Operation() != jetstream.KeyValuePut {
			t.Fatalf("types watch: got %v, want the demo registration", e)
		}
	case <-ctx.Done():
		t.Fatal("the gateway's types watch did not see the runner register demo")
	}
	if err := watch.Stop(); err != nil {
		t.Fatalf("stop types watch: %v", err)
	}
	if _, err := gw.streams.Types.Get(ctx, "demo"); err != nil {
		t.Fatalf("get job type as gateway: %v", err)
	}

	// Submit with an Idempotency-Key, as handleSubmit does.
	id := jobs.NewID(time.Now())
	if _, err := gw.streams.Idempotency.Create(ctx, "k1", []byte(`{"job_id":"`+id+`"}`)); err != nil {
		t.Fatalf("claim idempotency key as gateway: %v", err)
	}
	if _, err := gw.streams.Idempotency.Create(ctx, "k1", []byte(`{}`)); !errors.Is(err, jetstream.ErrKeyExists) {
		t.Fatalf("second claim of the key: %v, want ErrKeyExists", err)
	}
	if _, err := gw.streams.Idempotency.Get(ctx, "k1"); err != nil {
		t.Fatalf("read idempotency key as gateway: %v", err)
	}
	live, err := gw.SubscribeSync(jobs.ProgressSubject(id)) // the hub, one job
	if err != nil {
		t.Fatal(err)
	}
	all, err := gw.SubscribeSync(jobs.AllProgress) // the hub, watch_all
	if err != nil {
		t.Fatal(err)
	}
	ob := connectAs(t, s, "observer")
	obLive, err := ob.SubscribeSync(jobs.AllProgress)
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := ob.Flush(); err != nil {
		t.Fatal(err)
	}
	gw.enqueue(t, id, jobtypes.DemoInput{Steps: 5, StepMS: 5})

	evs := untilEnd(t, live, 20*time.Second)
	if last := evs[len(evs)-1]; last.Status != jobs.StatusSucceeded {
		t.Fatalf("job ended %s (%+v), want succeeded", last.Status, last.Error)
	}
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i, ev.Seq)
		}
	}
	if got := untilEnd(t, all, 5*time.Second); len(got) != len(evs) {
		t.Errorf("jobs.*.progress as gateway: %d events, want %d", len(got), len(evs))
	}
	if got := untilEnd(t, obLive, 5*time.Second); len(got) != len(evs) {
		t.Errorf("jobs.*.progress as observer: %d events, want %d", len(got), len(evs))
	}

	// Reads of the gateway: the last event (direct get), the job list
	// (stream info), history (batched direct gets), the tombstone the runner
	// wrote, and the end of the idempotency claim.
	last, _, err := jobs.LastEvent(ctx, gw.streams.Events, id)
	if err != nil || last.Seq != uint64(len(evs)) {
		t.Fatalf("LastEvent as gateway: seq %d, %v; want seq %d", last.Seq, err, len(evs))
	}
	info, err := gw.streams.Events.Info(ctx, jetstream.WithSubjectFilter(jobs.AllQueue))
	if err != nil || info.State.Subjects[jobs.QueueSubject("demo", id)] != 1 {
		t.Fatalf("events stream info as gateway: %v (subjects %v)", err, info)
	}
	if hist := replay(t, gw.Conn, id); len(hist) != len(evs) {
		t.Fatalf("history as gateway: %d events, want %d", len(hist), len(evs))
	}
	if owner, err := jobs.ReadOwner(ctx, gw.streams.Events, id); err != nil || owner.Owner != "alice" {
		t.Fatalf("owner record as gateway: %+v %v", owner, err)
	}
	// The runner writes the end record right after the final event.
	var end jobs.EndRecord
	var ended bool
	for deadline := time.Now().Add(10 * time.Second); !ended && err == nil && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		end, ended, err = jobs.ReadEnd(ctx, gw.streams.Records, id)
	}
	if err != nil || !ended || end.Status != jobs.StatusSucceeded {
		t.Fatalf("end record the runner wrote, as gateway: %+v %v %v", end, ended, err)
	}
	if ev, _, err := jobs.State(ctx, gw.streams.Events, gw.streams.Records, id); err != nil || ev.Seq != uint64(len(evs)) {
		t.Fatalf("State as gateway: seq %d, %v; want seq %d", ev.Seq, err, len(evs))
	}
	if err := gw.streams.Idempotency.Delete(ctx, "k1"); err != nil {
		t.Fatalf("drop idempotency key as gateway: %v", err)
	}

	// The observer, through jobclient: current state, and the whole
	// history to the end.
	client, err := jobclient.New(ob.Conn)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := client.Get(ctx, id); err != nil || got.Status != jobs.StatusSucceeded {
		t.Fatalf("jobclient Get as observer: %v %v", got.Status, err)
	}
	var watched []uint64
	for ev, err := range client.Watch(ctx, id, 0) {
		if err != nil {
			t.Fatalf("jobclient Watch as observer: %v", err)
		}
		watched = append(watched, ev.Seq)
	}
	if len(watched) != len(evs) || watched[len(watched)-1] != evs[len(evs)-1].Seq {
		t.Fatalf("jobclient Watch as observer: seqs %v, want 1..%d", watched, len(evs))
	}

	// A job longer than the ack wait: the runner heartbeats several times,
	// then acks; it is never redelivered.
	longID := jobs.NewID(time.Now())
	longLive, err := gw.SubscribeSync(jobs.ProgressSubject(longID))
	if err != nil {
		t.Fatal(err)
	}
	gw.enqueue(t, longID, jobtypes.DemoInput{Steps: 15, StepMS: 100})
	longEvs := untilEnd(t, longLive, 20*time.Second)
	if last := longEvs[len(longEvs)-1]; last.Status != jobs.StatusSucceeded || last.Attempt != 1 {
		t.Fatalf("long job ended %s at attempt %d, want succeeded at attempt 1", last.Status, last.Attempt)
	}
	waitFor(t, 5*time.Second, "the work queue empties", func() bool { return unsettledRequests(t, s) == 0 })

	gw.errs.none(t, "gateway")
	rn.errs.none(t, "runner")
	ob.errs.none(t, "observer")
}

// replay reads job id's stored events with batched direct gets, as the
// gateway's follow.replay does (jobs.History).
func replay(t testing.TB, nc *nats.Conn, id string) []jobs.Event {
	t.Helper()
	ctx := testContext(t, 10*time.Second)
	var evs []jobs.Event
	for m, err := range jobs.History(ctx, nc, id, 0) {
		if err != nil {
			t.Fatalf("history after %d events: %v", len(evs), err)
		}
		var ev jobs.Event
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	return evs
}

// TestCancelWithRolePermissions cancels a queued job (the gateway stores
// "canceled"; the runner later acks it unrun) and a running one (the
// gateway asks over NATS; the runner answers and stores "canceled").
func TestCancelWithRolePermissions(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	gw := startGateway(t, s)
	ctx := testContext(t, 30*time.Second)

	// Queued: no runner yet. As gateway.cancel does for a job no runner holds.
	queuedID := jobs.NewID(time.Now())
	gw.enqueue(t, queuedID, jobtypes.DemoInput{Steps: 1})
	ev, lastSeq, err := jobs.LastEvent(ctx, gw.streams.Events, queuedID)
	if err != nil {
		t.Fatal(err)
	}
	req := jobs.CancelRequest{By: jobs.CanceledByOwner, Reason: "test"}
	now := time.Now()
	done := ev.Next(jobs.KindCanceled, now)
	done.Status, done.EndedAt, done.Error = jobs.StatusCanceled, &now, jobs.CanceledError(req)
	doneSeq, err := jobs.PublishEvent(ctx, gw.js, done, lastSeq)
	if err != nil {
		t.Fatalf("store canceled as gateway: %v", err)
	}
	if err := jobs.RecordEnd(ctx, gw.js, done, doneSeq); err != nil {
		t.Fatalf("record end as gateway: %v", err)
	}
	// As jobops.Retry does: the retry record, read back by direct get.
	retryID := jobs.NewID(time.Now())
	if err := jobs.RecordRetry(ctx, gw.js, queuedID, retryID, now); err != nil {
		t.Fatalf("record retry as gateway: %v", err)
	}
	if rec, found, err := jobs.ReadRetry(ctx, gw.streams.Records, queuedID); err != nil || !found || rec.RetriedAs != retryID {
		t.Fatalf("read retry as gateway: %+v %v %v", rec, found, err)
	}

	_, rn := startRunner(t, s)
	// The runner takes the canceled job's message and acks it unrun: the
	// work queue empties and the job stays canceled.
	waitFor(t, 10*time.Second, "the canceled job's request is acked", func() bool { return unsettledRequests(t, s) == 0 })
	if ev, _, err := jobs.LastEvent(ctx, gw.streams.Events, queuedID); err != nil || ev.Status != jobs.StatusCanceled || ev.Seq != 2 {
		t.Fatalf("queued job after cancel: %s seq %d %v; want canceled seq 2", ev.Status, ev.Seq, err)
	}

	// Running: a long job, canceled through the runner that holds it.
	runID := jobs.NewID(time.Now())
	live, err := gw.SubscribeSync(jobs.ProgressSubject(runID))
	if err != nil {
		t.Fatal(err)
	}
	gw.enqueue(t, runID, jobtypes.DemoInput{Steps: 10000, StepMS: 10})
	waitFor(t, 10*time.Second, "job running", func() bool {
		ev, _, err := jobs.LastEvent(ctx, gw.streams.Events, runID)
		return err == nil && ev.Status == jobs.StatusRunning
	})
	payload, _ := json.Marshal(req)
	reply, err := gw.RequestWithContext(ctx, jobs.CancelSubject(runID), payload)
	if err != nil {
		t.Fatalf("cancel request as gateway: %v", err)
	}
	var ans jobs.CancelReply
	if err := json.Unmarshal(reply.Data, &ans); err != nil || !ans.Accepted {
		t.Fatalf("cancel answer %q: %v", reply.Data, err)
	}
	evs := untilEnd(t, live, 10*time.Second)
	if last := evs[len(evs)-1]; last.Status != jobs.StatusCanceled || last.Error == nil || last.Error.Message != "canceled by its owner: test" {
		t.Fatalf("running job ended %s %+v, want canceled by its owner", last.Status, last.Error)
	}
	waitFor(t, 10*time.Second, "the canceled job's request is acked", func() bool { return unsettledRequests(t, s) == 0 })

	gw.errs.none(t, "gateway")
	rn.errs.none(t, "runner")
}

// TestTwoRunnersShareThePool: a second runner joins the pool (its
// consumer exists: info, then update) and both run jobs.
func TestTwoRunnersShareThePool(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	gw := startGateway(t, s)
	_, rn1 := startRunner(t, s)
	_, rn2 := startRunner(t, s) // joins the pool: the consumer exists (consumer info, then update)
	ids := make([]string, 4)
	subs := make([]*nats.Subscription, len(ids))
	for i := range ids {
		ids[i] = jobs.NewID(time.Now())
		sub, err := gw.SubscribeSync(jobs.ProgressSubject(ids[i]))
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = sub
		gw.enqueue(t, ids[i], jobtypes.DemoInput{Steps: 3, StepMS: 5})
	}
	for i, sub := range subs {
		evs := untilEnd(t, sub, 20*time.Second)
		if st := evs[len(evs)-1].Status; st != jobs.StatusSucceeded {
			t.Errorf("job %d ended %s", i, st)
		}
	}
	gw.errs.none(t, "gateway")
	rn1.errs.none(t, "runner 1")
	rn2.errs.none(t, "runner 2")
}

// TestTypesWatchUnderFlowControl: the gateway's watch of the job types
// answers JetStream's flow control (it starts once more than about 1 MiB
// waits for the watcher), so the catalog does not stall.
func TestTypesWatchUnderFlowControl(t *testing.T) {
	t.Parallel()
	typesWatchFlow(t, startServer(t))
}

func typesWatchFlow(t *testing.T, s *server.Server) {
	gw := startGateway(t, s)
	rn := connectAs(t, s, "runner")
	rjs, err := jetstream.New(rn.Conn)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t, 15*time.Second)
	const types, size = 30, 100 << 10 // 3 MiB of registrations
	for i := range types {
		info, _ := json.Marshal(jobs.TypeInfo{Type: fmt.Sprintf("t%d", i), Description: strings.Repeat("x", size)})
		if _, err := rjs.Publish(ctx, fmt.Sprintf("$KV.%s.t%d", jobs.TypesBucket, i), info); err != nil {
			t.Fatalf("register type %d as runner: %v", i, err)
		}
	}
	watch, err := gw.streams.Types.WatchAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Stop()
	n := 0
	for e := range watch.Updates() {
		if e == nil {
			break
		}
		if strings.HasPrefix(e.Key(), "t") {
			n++
		}
	}
	if n != types {
		t.Fatalf("watch saw %d types, want %d", n, types)
	}
	gw.errs.none(t, "gateway")
	rn.errs.none(t, "runner")
}
