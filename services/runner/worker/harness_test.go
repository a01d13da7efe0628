package worker

// Test harness: a real embedded NATS server with JetStream per test, a
// runner on its own connection, and helpers that read what a user can see
// (the job's events, the queue stream, the consumer, the acks on the wire).
// Nothing here sleeps for a fixed time to synchronise: waits poll with a
// deadline, and the few "nothing happens for a while" checks say so.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/natstest"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Every test stops its servers, connections and runners in its
	// cleanups, so nothing may be left when the package's tests are done.
	// Per-runner checks (testRunner.stop) are stricter: they run right
	// after Run returns, while other tests are still going.
	goleak.VerifyTestMain(m)
}

const (
	// testTimeout bounds everything one test does.
	testTimeout = 90 * time.Second
	// waitTimeout bounds one wait for something to become true.
	waitTimeout = 30 * time.Second
)

// env is one test's NATS server, a client connection of the test's own
// (never the runner's), and handles to jobwire's streams.
type env struct {
	t      *testing.T
	ctx    context.Context
	srv    *server.Server // nil on a cluster
	urls   string         // where runners connect
	nc     *nats.Conn
	js     jetstream.JetStream
	queue  jetstream.Stream
	events jetstream.Stream

	// consumerName is the durable consumer of the last runner started.
	consumerName string
}

// newBareEnv starts a server and connects to it, without creating any
// stream.
func newBareEnv(t *testing.T) *env {
	t.Helper()
	// Not t.Context(): that one ends before the cleanups that stop the
	// runners, which still need it.
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	s := natstest.Server(t)
	nc := natstest.Connect(t, s)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, ctx: ctx, srv: s, urls: s.ClientURL(), nc: nc, js: js}
}

// newEnv is newBareEnv plus jobwire's streams, so a test can submit jobs
// before any runner starts.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := newBareEnv(t)
	streams, err := jobs.Topology{}.CreateOrUpdate(e.ctx, e.js)
	if err != nil {
		t.Fatalf("create topology: %v", err)
	}
	e.queue, e.events = streams.Events, streams.Events
	return e
}

// ---- runners -------------------------------------------------------------

// runnerLabel is the pprof label set on Run's goroutine. Goroutines inherit
// labels from the goroutine that starts them, so every goroutine Run starts
// (directly or through nats.go) carries it, and a test can check they are
// all gone once Run returned, even while other tests run in parallel.
const runnerLabel = "jobwire_test_runner"

var runnerSeq atomic.Int64

type testRunner struct {
	*Runner
	nc     *nats.Conn // the runner's own connection
	label  string
	cancel context.CancelFunc
	done   chan error

	runOnce   sync.Once
	returned  bool
	runErr    error
	checkOnce sync.Once
}

// startRunner makes a runner on a new connection and runs it until the
// test ends or stop is called.
func (e *env) startRunner(cfg Config, types ...JobType) *testRunner {
	e.t.Helper()
	nc := natstest.ConnectURL(e.t, e.urls)
	r, err := New(e.ctx, nc, cfg, types...)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	e.consumerName = jobs.ConsumerName(r.queues[0].typ) // its normal-priority one
	ctx, cancel := context.WithCancel(e.ctx)
	tr := &testRunner{Runner: r, nc: nc, label: fmt.Sprintf("runner-%d", runnerSeq.Add(1)), cancel: cancel, done: make(chan error, 1)}
	go pprof.Do(ctx, pprof.Labels(runnerLabel, tr.label), func(ctx context.Context) { tr.done <- r.Run(ctx) })
	e.t.Cleanup(func() {
		if err := tr.stop(e.t); err != nil {
			e.t.Errorf("Run returned %v", err)
		}
	})
	return tr
}

// waitRun cancels Run's context and waits for Run to return. It returns
// Run's error.
func (tr *testRunner) waitRun(t *testing.T) error {
	t.Helper()
	tr.runOnce.Do(func() {
		tr.cancel()
		select {
		case tr.runErr = <-tr.done:
			tr.returned = true
		case <-time.After(waitTimeout):
			t.Errorf("Run did not return within %v of its context being cancelled", waitTimeout)
		}
	})
	return tr.runErr
}

// stop is waitRun, and then checks that every goroutine Run started has
// ended.
func (tr *testRunner) stop(t *testing.T) error {
	t.Helper()
	err := tr.waitRun(t)
	tr.checkOnce.Do(func() {
		if !tr.returned {
			return
		}
		// A few end just after Run returns (nats.go unsubscribes a
		// finished fetch's inbox in the background), so poll.
		var left []string
		deadline := time.Now().Add(10 * time.Second)
		for {
			if left = labeledGoroutines(tr.label); len(left) == 0 {
				return
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond) // polling interval
		}
		t.Errorf("%d goroutine stack(s) started by Run are still alive 10s after Run returned:\n%s", len(left), strings.Join(left, "\n\n"))
	})
	return err
}

// labeledGoroutines returns the stacks of live goroutines carrying the
// runner label value.
func labeledGoroutines(value string) []string {
	var buf bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
	needle := fmt.Sprintf("%q:%q", runnerLabel, value)
	var out []string
	for _, rec := range strings.Split(buf.String(), "\n\n") {
		if strings.Contains(rec, needle) {
			out = append(out, rec)
		}
	}
	return out
}

// ---- submitting ----------------------------------------------------------

// submit stores a job the way the gateway does: the queued event (seq 1)
// first, then the request. It returns the job id.
func (e *env) submit(typ, input string) string {
	e.t.Helper()
	id := jobs.NewID(time.Now())
	e.submitID(id, typ, input)
	return id
}

func (e *env) submitID(id, typ, input string) {
	e.t.Helper()
	e.submitOn(typ, id, typ, input)
}

// submitOn is submitID with the request stored on the queue subject of
// type subjectType, whatever type it names.
func (e *env) submitOn(subjectType, id, typ, input string) {
	e.t.Helper()
	req := jobs.Request{ID: id, Type: typ, CreatedAt: time.Now().UTC()}
	if input != "" {
		req.Input = json.RawMessage(input)
	}
	m, err := jobs.RequestMsg(req)
	if err != nil {
		e.t.Fatal(err)
	}
	m.Subject = jobs.QueueSubject(subjectType, id)
	if err := jobs.EnqueueMsg(e.ctx, e.js, m); err != nil {
		e.t.Fatalf("store job request: %v", err)
	}
}

// publishRequest stores raw bytes as a job request of type typ (on the
// queue subject of a new job id).
func (e *env) publishRequest(typ string, data []byte) {
	e.t.Helper()
	if _, err := e.js.Publish(e.ctx, jobs.QueueSubject(typ, jobs.NewID(time.Now())), data, jetstream.WithExpectStream(jobs.Stream)); err != nil {
		e.t.Fatalf("publish job request: %v", err)
	}
}

// ---- reading state -------------------------------------------------------

// eventually polls cond until it reports true, failing the test with the
// last state it described when waitTimeout passes.
func (e *env) eventually(what string, cond func() (bool, string)) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, waitTimeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, state := cond()
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			e.t.Fatalf("timed out waiting for %s; last state: %s", what, state)
		case <-tick.C:
		}
	}
}

// holdsFor checks that cond stays true for d. It is the one kind of wait
// that is a fixed duration: asserting that something does NOT happen
// (a redelivery, a third concurrent handler) needs a window to watch.
func (e *env) holdsFor(d time.Duration, what string, cond func() (bool, string)) {
	e.t.Helper()
	end := time.Now().Add(d)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		if ok, state := cond(); !ok {
			e.t.Fatalf("%s stopped holding: %s", what, state)
		}
		if time.Now().After(end) {
			return
		}
		select {
		case <-e.ctx.Done():
			e.t.Fatalf("test context ended while checking %s", what)
		case <-tick.C:
		}
	}
}

// last reads the job's current state (its last event).
func (e *env) last(id string) (jobs.Event, error) {
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	ev, _, err := jobs.LastEvent(ctx, e.events, id)
	return ev, err
}

// waitEvent waits until the job's last event satisfies ok and returns it.
func (e *env) waitEvent(id, what string, ok func(jobs.Event) bool) jobs.Event {
	e.t.Helper()
	var got jobs.Event
	e.eventually(what, func() (bool, string) {
		ev, err := e.last(id)
		if err != nil {
			return false, err.Error()
		}
		got = ev
		return ok(ev), describe(ev)
	})
	return got
}

// waitEnded waits until the job reaches a final state and returns it.
func (e *env) waitEnded(id string) jobs.Event {
	e.t.Helper()
	return e.waitEvent(id, "job "+id+" to end", func(ev jobs.Event) bool { return ev.Status.Terminal() })
}

// history reads every stored event of the job, in order, through an
// ordered consumer on the events stream.
func (e *env) history(id string) []jobs.Event {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, waitTimeout)
	defer cancel()
	lastMsg, err := e.events.GetLastMsgForSubject(ctx, jobs.JobSubjects(id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		e.t.Fatalf("last event of %s: %v", id, err)
	}
	cons, err := e.js.OrderedConsumer(ctx, jobs.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{jobs.JobSubjects(id)},
	})
	if err != nil {
		e.t.Fatalf("ordered consumer: %v", err)
	}
	var evs []jobs.Event
	for {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			e.t.Fatalf("read history of %s after %d events: %v", id, len(evs), err)
		}
		var ev jobs.Event
		if err := json.Unmarshal(msg.Data(), &ev); err != nil {
			e.t.Fatalf("stored event is not valid JSON: %v: %s", err, msg.Data())
		}
		evs = append(evs, ev)
		md, err := msg.Metadata()
		if err != nil {
			e.t.Fatal(err)
		}
		if md.Sequence.Stream >= lastMsg.Sequence {
			return evs
		}
	}
}

// checkSeqs fails unless the history is one job's events numbered 1..N:
// no gap, no duplicate, no reordering.
func checkSeqs(t *testing.T, id string, evs []jobs.Event) {
	t.Helper()
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) || ev.JobID != id {
			t.Fatalf("event %d of job %s is seq %d of job %s, want seq %d:\n%s", i, id, ev.Seq, ev.JobID, i+1, describeAll(evs))
		}
	}
}

// ofKind keeps the events of one kind.
func ofKind(evs []jobs.Event, kind jobs.Kind) []jobs.Event {
	var out []jobs.Event
	for _, ev := range evs {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

// describe and describeAll summarise events for failure messages.
var describe, describeAll = natstest.Describe, natstest.DescribeAll

// queueMsgs is how many job requests wait or are in flight: what the
// runners' consumers have not delivered yet or not seen settled (the
// stream keeps settled requests as the jobs' first events). With no
// runners' consumer yet, every stored request.
func (e *env) queueMsgs() (uint64, error) {
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	var n uint64
	consumers := 0
	list := e.queue.ListConsumers(ctx)
	for info := range list.Info() {
		if !strings.HasPrefix(info.Name, "runners_") {
			continue // the ordered consumers history reads with
		}
		consumers++
		n += info.NumPending + uint64(info.NumAckPending)
	}
	if err := list.Err(); err != nil {
		return 0, err
	}
	if consumers > 0 {
		return n, nil
	}
	info, err := e.queue.Info(ctx, jetstream.WithSubjectFilter(jobs.AllQueue))
	if err != nil {
		return 0, err
	}
	for _, c := range info.State.Subjects {
		n += c
	}
	return n, nil
}

// consumer reads the state of the last started runner's consumer.
func (e *env) consumer() (*jetstream.ConsumerInfo, error) {
	return e.consumerNamed(e.consumerName)
}

func (e *env) consumerNamed(name string) (*jetstream.ConsumerInfo, error) {
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	c, err := e.js.Consumer(ctx, jobs.Stream, name)
	if err != nil {
		return nil, err
	}
	return c.Info(ctx)
}

// queueState describes the queue stream and consumer for failure messages.
type queueState struct {
	msgs                    uint64
	ackPending, redelivered int
	pending                 uint64
	delivered               uint64
	err                     error
}

func (q queueState) String() string {
	if q.err != nil {
		return q.err.Error()
	}
	return fmt.Sprintf("queue holds %d, consumer: ack pending %d, redelivered %d, pending %d, delivered %d",
		q.msgs, q.ackPending, q.redelivered, q.pending, q.delivered)
}

func (e *env) queueState() queueState {
	msgs, err := e.queueMsgs()
	if err != nil {
		return queueState{err: err}
	}
	ci, err := e.consumer()
	if err != nil {
		return queueState{err: err}
	}
	return queueState{msgs: msgs, ackPending: ci.NumAckPending, redelivered: ci.NumRedelivered, pending: ci.NumPending, delivered: ci.Delivered.Consumer}
}

// waitQueueSettled waits until every job request has been removed from the
// queue and no delivery waits for an ack.
func (e *env) waitQueueSettled() queueState {
	e.t.Helper()
	var q queueState
	e.eventually("the queue to be empty with nothing pending", func() (bool, string) {
		q = e.queueState()
		return q.err == nil && q.msgs == 0 && q.ackPending == 0 && q.pending == 0, q.String()
	})
	return q
}

// ---- the wire ------------------------------------------------------------

// wire records, in arrival order, the messages on some subjects as seen by
// the test's own connection. All subscriptions share one channel, which the
// connection's reader fills in the order the server sent them, so the
// relative order of two messages one runner published is kept.
type wire struct {
	t  *testing.T
	ch chan *nats.Msg

	mu  sync.Mutex
	got []string
}

// record starts recording. Acks and heartbeats (on $JS.ACK.>) are
// recorded as "ack +ACK", "ack +WPI", "ack -NAK", "ack +TERM"; job events
// as "event <kind> <seq> attempt=<n>".
func (e *env) record(subjects ...string) *wire {
	e.t.Helper()
	w := &wire{t: e.t, ch: make(chan *nats.Msg, 1<<16)}
	for _, s := range subjects {
		sub, err := e.nc.ChanSubscribe(s, w.ch)
		if err != nil {
			e.t.Fatal(err)
		}
		e.t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	if err := e.nc.FlushTimeout(5 * time.Second); err != nil {
		e.t.Fatal(err)
	}
	return w
}

const ackSubjects = "$JS.ACK.>"

// readsOfState counts the reads of job id's state (direct gets of its last
// event) that connections other than the test's own make from now on.
func (e *env) readsOfState(id string) func() int {
	e.t.Helper()
	ch := make(chan *nats.Msg, 1024)
	sub, err := e.nc.ChanSubscribe("$JS.API.DIRECT.GET."+jobs.Stream+"."+jobs.JobSubjects(id), ch)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := e.nc.FlushTimeout(5 * time.Second); err != nil {
		e.t.Fatal(err)
	}
	own := e.nc.NewRespInbox()
	own = own[:strings.LastIndexByte(own, '.')+1]
	n := 0
	return func() int {
		for {
			select {
			case m := <-ch:
				if !strings.HasPrefix(m.Reply, own) {
					n++
				}
			default:
				return n
			}
		}
	}
}

// entries returns everything recorded so far.
func (w *wire) entries() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		select {
		case m := <-w.ch:
			w.got = append(w.got, wireEntry(m))
		default:
			return append([]string(nil), w.got...)
		}
	}
}

func wireEntry(m *nats.Msg) string {
	if strings.HasPrefix(m.Subject, "$JS.ACK.") {
		kind, _, _ := strings.Cut(string(m.Data), " ")
		return "ack " + kind
	}
	var ev jobs.Event
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		return "undecodable " + m.Subject
	}
	return fmt.Sprintf("event %s %d attempt=%d", ev.Kind, ev.Seq, ev.Attempt)
}

func count(entries []string, prefix string) int {
	n := 0
	for _, e := range entries {
		if strings.HasPrefix(e, prefix) {
			n++
		}
	}
	return n
}

func index(entries []string, prefix string) int {
	for i, e := range entries {
		if strings.HasPrefix(e, prefix) {
			return i
		}
	}
	return -1
}

// ---- handlers ------------------------------------------------------------

// calls counts handler calls and records the attempts they saw.
type calls struct {
	mu       sync.Mutex
	attempts []int
}

func (c *calls) add(job *Job) {
	c.mu.Lock()
	c.attempts = append(c.attempts, job.Attempt)
	c.mu.Unlock()
}

func (c *calls) seen() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.attempts...)
}

func jobType(name string, h Handler) JobType {
	return JobType{Name: name, Description: "test job type " + name, Handler: h}
}

func ok(context.Context, *Job) (any, error) { return "ok", nil }
