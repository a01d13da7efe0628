package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jobwire/jobwire/internal/testsys"
	"github.com/jobwire/jobwire/shared/jobs"
)

// serverMsg is anything the server sends on /ws.
type serverMsg struct {
	Op      string     `json:"op"`
	JobID   string     `json:"job_id"`
	Event   jobs.Event `json:"event"`
	Code    string     `json:"code"`
	Message string     `json:"message"`
}

type wsClient struct {
	t  testing.TB
	c  *websocket.Conn
	ct context.Context
}

func dialWS(t testing.TB, sys *testsys.System) *wsClient {
	t.Helper()
	// One deadline for the whole conversation: generous, for loaded CI machines.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	h := http.Header{}
	for k, v := range sys.Header() {
		h.Set(k, v)
	}
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(sys.URL, "http")+"/ws", &websocket.DialOptions{HTTPClient: sys.HTTPClient(), HTTPHeader: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return &wsClient{t: t, c: c, ct: ctx}
}

func (w *wsClient) send(msg string) {
	w.t.Helper()
	if err := w.c.Write(w.ct, websocket.MessageText, []byte(msg)); err != nil {
		w.t.Fatal(err)
	}
}

// eventWait bounds every wait of a test for one message or event, so that
// a gateway that stops delivering fails the test within seconds instead of
// hanging until the package timeout.
const eventWait = 15 * time.Second

// next reads the next message, waiting at most eventWait for it. A read
// that ends the connection (a close frame, say) returns its error; the
// deadline returns an error that says what was waited for.
// seqsUntilClosed reads event frames until the server closes the
// connection, which it must do with one of the codes want, and returns
// their seqs.
func (w *wsClient) seqsUntilClosed(want ...websocket.StatusCode) []uint64 {
	w.t.Helper()
	var seqs []uint64
	for {
		_, b, err := w.next()
		if err != nil {
			if !slices.Contains(want, websocket.CloseStatus(err)) {
				w.t.Fatalf("closed with %v, want one of %v", err, want)
			}
			return seqs
		}
		var m serverMsg
		if err := json.Unmarshal(b, &m); err != nil {
			w.t.Fatal(err)
		}
		seqs = append(seqs, m.Event.Seq)
	}
}

func (w *wsClient) next() (websocket.MessageType, []byte, error) {
	ctx, cancel := context.WithTimeout(w.ct, eventWait)
	defer cancel()
	typ, b, err := w.c.Read(ctx)
	if err != nil && ctx.Err() != nil {
		return typ, b, fmt.Errorf("no message from the gateway within %v: %w", eventWait, err)
	}
	return typ, b, err
}

func (w *wsClient) read() serverMsg {
	w.t.Helper()
	_, b, err := w.next()
	if err != nil {
		w.t.Fatal(err)
	}
	var m serverMsg
	if err := json.Unmarshal(b, &m); err != nil {
		w.t.Fatalf("%q: %v", b, err)
	}
	return m
}

// readUntilTerminal reads events of job id until its terminal one and
// checks they come in strictly growing seq order.
func (w *wsClient) readUntilTerminal(id string) []jobs.Event {
	w.t.Helper()
	var evs []jobs.Event
	for {
		m := w.read()
		if m.Op != "event" || m.JobID != id || m.Event.JobID != id {
			w.t.Fatalf("unexpected message while watching %s: %+v", id, m)
		}
		if n := len(evs); n > 0 && m.Event.Seq <= evs[n-1].Seq {
			w.t.Fatalf("seq %d after %d: out of order or duplicate", m.Event.Seq, evs[n-1].Seq)
		}
		evs = append(evs, m.Event)
		if m.Event.Status.Terminal() {
			return evs
		}
	}
}

func TestWatchLiveToSuccess(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t)
	ws := dialWS(t, sys)
	snap := sys.Submit(t, "demo", `{"steps":10,"step_ms":20}`)
	ws.send(`{"op":"watch","job_id":"` + snap.ID + `"}`)
	evs := ws.readUntilTerminal(snap.ID)
	last := evs[len(evs)-1]
	if last.Kind != jobs.KindSucceeded || last.Percent == nil || *last.Percent != 100 || string(last.Result) != `{"steps":10}` {
		t.Fatalf("last event = %+v", last)
	}
	var midway bool
	for _, e := range evs {
		if e.Percent != nil && *e.Percent > 0 && *e.Percent < 100 {
			midway = true
		}
	}
	if !midway || len(evs) < 3 {
		t.Fatalf("want live progress between 0 and 100, got %d events", len(evs))
	}
}

func TestWatchAfterCompletionGetsFinalState(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t)
	snap := sys.Submit(t, "demo", `{"steps":2,"step_ms":1}`)
	final := sys.WaitStatus(t, snap.ID, jobs.StatusSucceeded, 20*time.Second)
	ws := dialWS(t, sys)
	ws.send(`{"op":"watch","job_id":"` + snap.ID + `"}`)
	m := ws.read()
	if m.Op != "event" || m.Event.Status != jobs.StatusSucceeded || m.Event.Seq != final.Seq {
		t.Fatalf("first message = %+v, want the final snapshot (seq %d)", m, final.Seq)
	}
}

func TestWatchErrorsKeepConnectionUsable(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t)
	ws := dialWS(t, sys)
	unknown := jobs.NewID(time.Now())
	cases := []struct{ send, code, jobID string }{
		{`{"op":"watch","job_id":"` + unknown + `"}`, "not_found", unknown},
		{`{"op":"watch","job_id":"*"}`, "invalid_id", "*"},
		{`{"op":"watch","job_id":">"}`, "invalid_id", ">"},
		{`{"op":"watch","job_id":"jobs.x"}`, "invalid_id", "jobs.x"},
		{`{"op":"watch","job_id":""}`, "invalid_id", ""},
		{`{"op":"watch","job_id":"a b"}`, "invalid_id", "a b"},
		{`{"op":"dance","job_id":"x"}`, "bad_request", "x"},
		{`{"op":"watch",`, "bad_request", ""},
		{`[]`, "bad_request", ""},
	}
	for _, c := range cases {
		ws.send(c.send)
		m := ws.read()
		if m.Op != "error" || m.Code != c.code || m.JobID != c.jobID || m.Message == "" {
			t.Errorf("%s → %+v, want error %s for %q", c.send, m, c.code, c.jobID)
		}
	}
	// Still usable, and the wildcard watches above leaked nothing: every
	// message from here on belongs to the job watched now, while another
	// job runs at the same time.
	other := sys.Submit(t, "demo", `{"steps":5,"step_ms":10}`)
	snap := sys.Submit(t, "demo", `{"steps":5,"step_ms":10}`)
	ws.send(`{"op":"watch","job_id":"` + snap.ID + `"}`)
	ws.readUntilTerminal(snap.ID)
	sys.WaitStatus(t, other.ID, jobs.StatusSucceeded, 20*time.Second)
}

// RFC 6455: a text message that is not UTF-8 fails the connection (1007).
func TestTextThatIsNotUTF8Closes1007(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner())
	ws := dialWS(t, sys)
	ws.send(`{"op":"watch","job_id":"é"}`) // UTF-8 beyond ASCII is fine
	if m := ws.read(); m.Code != "invalid_id" {
		t.Fatalf("a UTF-8 id: %+v, want invalid_id", m)
	}
	ws.send("{\"op\":\"watch\",\"job_id\":\"\xff\xfe\"}")
	_, b, err := ws.c.Read(ws.ct)
	if websocket.CloseStatus(err) != websocket.StatusInvalidFramePayloadData {
		t.Fatalf("after invalid UTF-8: %q %v, want close 1007", b, err)
	}
}

func TestOneConnectionWatchesManyJobs(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t)
	ws := dialWS(t, sys)
	a := sys.Submit(t, "demo", `{"steps":5,"step_ms":10}`)
	b := sys.Submit(t, "demo", `{"steps":5,"step_ms":10}`)
	ws.send(`{"op":"watch","job_id":"` + a.ID + `"}`)
	ws.send(`{"op":"watch","job_id":"` + b.ID + `"}`)
	last := map[string]uint64{}
	done := map[string]bool{}
	for len(done) < 2 {
		m := ws.read()
		if m.Op != "event" || (m.JobID != a.ID && m.JobID != b.ID) {
			t.Fatalf("unexpected %+v", m)
		}
		if m.Event.Seq <= last[m.JobID] {
			t.Fatalf("job %s: seq %d after %d", m.JobID, m.Event.Seq, last[m.JobID])
		}
		last[m.JobID] = m.Event.Seq
		if m.Event.Status.Terminal() {
			done[m.JobID] = true
		}
	}
}

func TestSubscriptionsFollowWatchers(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t)
	snap := sys.Submit(t, "demo", `{"steps":1,"step_ms":0}`)
	sys.WaitStatus(t, snap.ID, jobs.StatusSucceeded, 20*time.Second)
	waitSubs := func(want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for sys.GW.Live().Stats().Subscriptions != want {
			if time.Now().After(deadline) {
				t.Fatalf("gateway holds %d job subscriptions, want %d", sys.GW.Live().Stats().Subscriptions, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitSubs(0)
	w1, w2 := dialWS(t, sys), dialWS(t, sys)
	for _, w := range []*wsClient{w1, w2} {
		w.send(`{"op":"watch","job_id":"` + snap.ID + `"}`)
		w.read()
	}
	waitSubs(1)
	w1.send(`{"op":"unwatch","job_id":"` + snap.ID + `"}`)
	// The other watcher keeps the subscription.
	w1.send(`{"op":"watch","job_id":"` + jobs.NewID(time.Now()) + `"}`)
	if m := w1.read(); m.Code != "not_found" {
		t.Fatalf("got %+v", m)
	}
	waitSubs(1)
	_ = w2.c.Close(websocket.StatusNormalClosure, "")
	waitSubs(0)
}

func TestShutdownClosesWebSocketsGoingAway(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t)
	ws := dialWS(t, sys)
	snap := sys.Submit(t, "demo", `{"steps":1,"step_ms":0}`)
	ws.send(`{"op":"watch","job_id":"` + snap.ID + `"}`)
	ws.read()
	sys.GW.Live().CloseAll()
	for {
		_, _, err := ws.next()
		if err != nil {
			if websocket.CloseStatus(err) != websocket.StatusGoingAway {
				t.Fatalf("closed with %v, want going away", err)
			}
			return
		}
	}
}

func TestWatchAllFeedsEveryJob(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t)
	user := dialWS(t, sys)
	user.send(`{"op":"watch_all"}`)
	if m := user.read(); m.Op != "error" || m.Code != "forbidden" {
		t.Fatalf("watch_all by a user: %+v", m)
	}
	ws := dialWS(t, sys.As(testsys.Token(t, "ops", true, time.Hour)))
	ws.send(`{"op":"watch_all"}`)
	// The feed is live only: make sure it is subscribed before jobs start.
	deadline := time.Now().Add(10 * time.Second)
	for sys.GW.Live().Stats().Subscriptions != 1 {
		if time.Now().After(deadline) {
			t.Fatal("watch_all did not subscribe")
		}
		time.Sleep(5 * time.Millisecond)
	}
	a := sys.Submit(t, "demo", `{"steps":3,"step_ms":5}`)
	b := sys.Submit(t, "demo", `{"steps":3,"step_ms":5}`)
	last := map[string]uint64{}
	done := map[string]bool{}
	for len(done) < 2 {
		m := ws.read()
		if m.Op != "event" || (m.JobID != a.ID && m.JobID != b.ID) || m.Event.Seq <= last[m.JobID] {
			t.Fatalf("unexpected %+v (last %d)", m, last[m.JobID])
		}
		if last[m.JobID] == 0 && m.Event.Seq != 1 {
			t.Fatalf("job %s: the feed started at seq %d", m.JobID, m.Event.Seq)
		}
		last[m.JobID] = m.Event.Seq
		if m.Event.Status.Terminal() {
			done[m.JobID] = true
		}
	}
	ws.send(`{"op":"unwatch_all"}`)
	for deadline := time.Now().Add(10 * time.Second); sys.GW.Live().Stats().Subscriptions != 0; {
		if time.Now().After(deadline) {
			t.Fatal("unwatch_all left the subscription")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Restarting the gateway under watchers: they are closed with "going
// away", reconnect (here to another gateway) and resume by seq.
func TestGatewayRestartUnderWatchers(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithTypes(loggerType(200, 10, 5*time.Millisecond)))
	snap := sys.Submit(t, "logger", `{}`)
	ws := dialWS(t, sys)
	ws.send(`{"op":"watch","job_id":"` + snap.ID + `","after_seq":0}`)
	seqs := readSeqs(t, ws, snap.ID, func(m serverMsg) bool { return m.Event.Seq >= 30 })
	sys.GW.Live().CloseAll()
	seqs = append(seqs, ws.seqsUntilClosed(websocket.StatusGoingAway)...)
	next := testsys.StartOn(t, sys.NATS, testsys.WithoutRunner()).SameCaller(sys)
	again := dialWS(t, next)
	again.send(fmt.Sprintf(`{"op":"watch","job_id":"%s","after_seq":%d}`, snap.ID, seqs[len(seqs)-1]))
	rest := readSeqs(t, again, snap.ID, func(m serverMsg) bool { return m.Event.Status.Terminal() })
	checkExact(t, append(seqs, rest...), 1)
}

// A write that lost the fence (a zombie attempt, a late progress report
// racing a cancel) is refused by the stream, and no watcher ever sees it:
// live events are the stream's republication of what it stored.
func TestWatchersNeverSeeARefusedWrite(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner())
	snap := sys.Submit(t, "demo", `{"steps":1,"step_ms":0}`)
	ws := dialWS(t, sys)
	ws.send(`{"op":"watch","job_id":"` + snap.ID + `"}`)
	if m := ws.read(); m.Op != "event" || m.Event.Seq != 1 {
		t.Fatalf("first message %+v, want the queued event", m)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	queued, _, err := jobs.LastEvent(ctx, sys.Streams.Events, snap.ID)
	if err != nil {
		t.Fatal(err)
	}
	zombie := queued.Next(jobs.KindSucceeded, time.Now())
	zombie.Status, zombie.Result = jobs.StatusSucceeded, json.RawMessage(`"from a zombie"`)
	if _, err := jobs.PublishEvent(ctx, sys.JS, zombie, 0); !jobs.IsWrongLastSequence(err) {
		t.Fatalf("the zombie's write: %v, want it refused", err)
	}
	if code, _ := sys.Cancel(t, snap.ID, `{"reason":"test"}`); code != http.StatusAccepted {
		t.Fatalf("cancel: %d", code)
	}
	evs := ws.readUntilTerminal(snap.ID)
	if len(evs) != 1 || evs[0].Seq != 2 || evs[0].Status != jobs.StatusCanceled {
		t.Fatalf("watcher saw %+v after the queued event, want only the canceled event (seq 2)", evs)
	}
}
