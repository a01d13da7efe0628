package natsperm_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/jobwire/jobwire/services/runner/jobtypes"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// fakeEvent is a well-formed event of job id, for forgery attempts.
func fakeEvent(id string) []byte {
	b, _ := json.Marshal(jobs.Event{JobID: id, Type: "demo", Seq: 1, Kind: jobs.KindSucceeded, Status: jobs.StatusSucceeded, Time: time.Now()})
	return b
}

// fakeRequest is a well-formed job request.
func fakeRequest() []byte {
	b, _ := json.Marshal(jobs.Request{ID: jobs.NewID(time.Now()), Type: "demo", CreatedAt: time.Now()})
	return b
}

// jsPublishFails asserts that a JetStream publish as nc is refused: the
// server reports the violation, so the publish gets no ack and fails.
func jsPublishFails(t *testing.T, c conn, subject string, data []byte) {
	t.Helper()
	js, err := jetstream.New(c.Conn)
	if err != nil {
		t.Fatal(err)
	}
	if ack, err := js.Publish(testContext(t, 500*time.Millisecond), subject, data); err == nil {
		t.Fatalf("JetStream publish to %s was stored (stream %s seq %d)", subject, ack.Stream, ack.Sequence)
	}
	c.errs.violation(t, "publish", subject)
}

func TestObserverCanOnlyWatch(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	gw := startGateway(t, s) // no runner: jobs stay queued
	ob := connectAs(t, s, "observer")
	ctx := testContext(t, 20*time.Second)

	// It may subscribe to every job's events, and receives them.
	sub, err := ob.SubscribeSync(jobs.AllProgress)
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Flush(); err != nil {
		t.Fatal(err)
	}
	id := jobs.NewID(time.Now())
	gw.enqueue(t, id, jobtypes.DemoInput{Steps: 1})
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil || m.Subject != jobs.ProgressSubject(id) {
		t.Fatalf("observer's jobs.*.progress: %v %v", m, err)
	}

	// What it receives is the stream's republication of a stored event: no
	// reply subject, so no publisher's inbox to send forged acks to.
	if m.Reply != "" || m.Header.Get("Nats-Stream") != jobs.Stream {
		t.Fatalf("live event: reply %q, headers %v; want a republished stored event", m.Reply, m.Header)
	}

	// It may not forge events, neither as a plain publish on the live
	// subject nor through JetStream, nor for an existing job.
	forged := jobs.NewID(time.Now())
	if err := ob.Publish(jobs.ProgressSubject(forged), fakeEvent(forged)); err != nil {
		t.Fatal(err)
	}
	ob.errs.violation(t, "publish", jobs.ProgressSubject(forged))
	jsPublishFails(t, ob, jobs.EventSubject("demo", id), fakeEvent(id))
	if _, _, err := jobs.LastEvent(ctx, gw.streams.Events, forged); err != jobs.ErrNotFound {
		t.Fatalf("forged job: %v, want not found", err)
	}
	if ev, _, err := jobs.LastEvent(ctx, gw.streams.Events, id); err != nil || ev.Status != jobs.StatusQueued {
		t.Fatalf("real job after forgery: %s %v, want still queued", ev.Status, err)
	}

	// It may not submit jobs.
	reqSubj := jobs.QueueSubject("demo", jobs.NewID(time.Now()))
	before := streamState(t, s, jobs.Stream).LastSeq
	if err := ob.Publish(reqSubj, fakeRequest()); err != nil {
		t.Fatal(err)
	}
	ob.errs.violation(t, "publish", reqSubj)
	jsPublishFails(t, ob, reqSubj, fakeRequest())
	if after := streamState(t, s, jobs.Stream).LastSeq; after != before {
		t.Fatalf("JOBS went from seq %d to %d", before, after)
	}

	// Nor cancel jobs, register job types, or write job records.
	if err := ob.PublishRequest(jobs.CancelSubject(id), ob.NewInbox(), []byte(`{"by":"mallory"}`)); err != nil {
		t.Fatal(err)
	}
	ob.errs.violation(t, "publish", jobs.CancelSubject(id))
	jsPublishFails(t, ob, "$KV.JOBWIRE_TYPES.demo", []byte(`{"type":"demo"}`))
	jsPublishFails(t, ob, jobs.QueueSubject("other", id), fakeRequest()) // a second owner
	jsPublishFails(t, ob, jobs.EndSubject(id), []byte(`{"seq":1,"status":"failed"}`))
	jsPublishFails(t, ob, jobs.RetrySubject(id), []byte(`{"retried_as":"x"}`))

	// Nor read what is not its own: cancel requests, job requests,
	// other users' inboxes.
	for _, subj := range []string{jobs.AllCancel, jobs.AllQueue, "_INBOX_gateway.>", "_INBOX_runner.>", "_INBOX.>", ">"} {
		if _, err := ob.SubscribeSync(subj); err != nil {
			t.Fatal(err)
		}
		ob.errs.violation(t, "subscription", subj)
	}

	// Nor touch the work queue or the streams.
	for _, subj := range []string{
		"$JS.API.CONSUMER.CREATE.JOBS.thief",
		"$JS.API.CONSUMER.MSG.NEXT.JOBS." + jobs.ConsumerName("demo"),
		"$JS.API.STREAM.DELETE.JOBS",
		"$JS.API.STREAM.PURGE.JOBS",
		"$JS.API.STREAM.UPDATE.JOBS",
		"$JS.API.STREAM.MSG.DELETE.JOBS",
		"$JS.API.CONSUMER.CREATE.KV_JOBWIRE_TYPES.spy",
	} {
		if _, err := ob.Request(subj, []byte(`{}`), 200*time.Millisecond); err == nil {
			t.Fatalf("request on %s was answered", subj)
		}
		ob.errs.violation(t, "publish", subj)
	}
	if n := streamMsgs(t, s, jobs.Stream); n != 1 {
		t.Fatalf("JOBS holds %d messages, want the 1 queued job", n)
	}
}

func TestRunnerCannotSubmit(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	_, rn := startRunner(t, s)
	reqSubj := jobs.QueueSubject("demo", jobs.NewID(time.Now()))
	before := streamState(t, s, jobs.Stream).LastSeq
	if err := rn.Publish(reqSubj, fakeRequest()); err != nil {
		t.Fatal(err)
	}
	rn.errs.violation(t, "publish", reqSubj)
	jsPublishFails(t, rn, reqSubj, fakeRequest())
	if after := streamState(t, s, jobs.Stream).LastSeq; after != before {
		t.Fatalf("JOBS went from seq %d to %d", before, after)
	}
	// Nor claim idempotency keys, nor own a job, nor mark one retried, nor
	// delete streams.
	jsPublishFails(t, rn, "$KV.JOBWIRE_IDEMPOTENCY.k", []byte(`{"job_id":"x"}`))
	jsPublishFails(t, rn, jobs.QueueSubject("other", jobs.NewID(time.Now())), fakeRequest())       // a job of its own
	jsPublishFails(t, rn, jobs.RetrySubject(jobs.NewID(time.Now())), []byte(`{"retried_as":"x"}`)) // a retry record
	if _, err := rn.Request("$JS.API.STREAM.DELETE.JOBS", nil, 200*time.Millisecond); err == nil {
		t.Fatal("stream delete was answered")
	}
	rn.errs.violation(t, "publish", "$JS.API.STREAM.DELETE.JOBS")
}

// TestGatewayCannotConsumeWorkQueue: the gateway stores jobs but can never
// take one from the runners: no fetch, no ack, no consumer of its own. The
// job it tried to take then runs normally, on its first delivery.
func TestGatewayCannotConsumeWorkQueue(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	gw := startGateway(t, s)
	r, rn := newRunner(t, s) // the pool's consumer exists; nothing fetches yet
	id := jobs.NewID(time.Now())
	gw.enqueue(t, id, jobtypes.DemoInput{Steps: 2, StepMS: 5})
	pool := jobs.ConsumerName("demo")

	next := "$JS.API.CONSUMER.MSG.NEXT.JOBS." + pool
	if m, err := gw.Request(next, []byte(`{"batch":1,"no_wait":true}`), 500*time.Millisecond); err == nil {
		t.Fatalf("the gateway fetched from the work queue: %s %q", m.Subject, m.Data)
	}
	gw.errs.violation(t, "publish", next)

	// Acks, naks and terms of job messages (v1 and v2 ack subjects).
	for _, ack := range []string{
		"$JS.ACK.JOBS." + pool + ".1.2.1.1767225600000000000.0",
		"$JS.ACK._.ABCDEF.JOBS." + pool + ".1.2.1.1767225600000000000.0",
	} {
		if err := gw.Publish(ack, []byte("+TERM")); err != nil {
			t.Fatal(err)
		}
		gw.errs.violation(t, "publish", ack)
	}

	// Through the JetStream API: it may read the pool's consumer info (the
	// queue in GET /api/stats), but not make a consumer of its own.
	if _, err := gw.js.Consumer(testContext(t, 500*time.Millisecond), jobs.Stream, pool); err != nil {
		t.Fatalf("the gateway cannot read the runners' consumer info: %v", err)
	}
	if _, err := gw.js.CreateOrUpdateConsumer(testContext(t, 500*time.Millisecond), jobs.Stream,
		jetstream.ConsumerConfig{Durable: "thief", AckPolicy: jetstream.AckExplicitPolicy}); err == nil {
		t.Fatal("the gateway created a consumer on JOBS")
	}
	gw.errs.violation(t, "publish", "$JS.API.CONSUMER.CREATE.JOBS.thief")
	if _, err := gw.Request("$JS.API.STREAM.DELETE.JOBS", nil, 200*time.Millisecond); err == nil {
		t.Fatal("stream delete was answered")
	}
	gw.errs.violation(t, "publish", "$JS.API.STREAM.DELETE.JOBS")

	// The job was never delivered: it runs now, as attempt 1.
	live, err := gw.SubscribeSync(jobs.ProgressSubject(id))
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Flush(); err != nil {
		t.Fatal(err)
	}
	run(t, r)
	evs := untilEnd(t, live, 20*time.Second)
	if last := evs[len(evs)-1]; last.Status != jobs.StatusSucceeded || last.Attempt != 1 {
		t.Fatalf("job ended %s at attempt %d, want succeeded at attempt 1", last.Status, last.Attempt)
	}
	rn.errs.none(t, "runner")
}

// TestInboxesArePrivate: a client that keeps the default inbox prefix
// cannot even receive its own replies, and no user can receive another's.
func TestInboxesArePrivate(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	errs := newAsyncErrors()
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("gateway", passwords["gateway"]), nats.ErrorHandler(errs.handler))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := js.Stream(ctx, jobs.Stream); err == nil || errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("a request (that the gateway may make) with the default inbox prefix got its answer: %v", err)
	}
	waitFor(t, 5*time.Second, "a subscription violation for _INBOX.", func() bool {
		for _, err := range errs.all() {
			if e := err.Error(); contains(e, `Permissions Violation for Subscription to "_INBOX.`) {
				return true
			}
		}
		return false
	})
	rn := connectAs(t, s, "runner")
	if _, err := rn.SubscribeSync("_INBOX_gateway.>"); err != nil {
		t.Fatal(err)
	}
	rn.errs.violation(t, "subscription", "_INBOX_gateway.>")
}

// TestNobodyPublishesLiveEvents: jobs.<id>.progress carries only what the
// events stream republishes once stored. The services write events on
// jobwire.events.<id>; neither may publish on the live subject itself.
func TestNobodyPublishesLiveEvents(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	gw := startGateway(t, s)
	_, rn := startRunner(t, s)
	id := jobs.NewID(time.Now())
	for _, c := range []conn{gw.conn, rn} {
		if err := c.Publish(jobs.ProgressSubject(id), fakeEvent(id)); err != nil {
			t.Fatal(err)
		}
		c.errs.violation(t, "publish", jobs.ProgressSubject(id))
	}
}
