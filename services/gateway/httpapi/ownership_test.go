package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/natstest"
	"github.com/jobwire/jobwire/internal/testsys"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go/jetstream"
)

// forger writes on NATS what a runner's credentials allow: events of any
// job, and end records.
type forger struct {
	ctx     context.Context
	js      jetstream.JetStream
	streams *jobs.Streams
}

func newForger(t *testing.T, sys *testsys.System) *forger {
	t.Helper()
	js, err := jetstream.New(natstest.Connect(t, sys.NATS))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return &forger{ctx: ctx, js: js, streams: sys.Streams}
}

// append stores, after job id's last event, one changed by set.
func (f *forger) append(t *testing.T, id string, kind jobs.Kind, set func(*jobs.Event)) {
	t.Helper()
	last, seq, err := jobs.LastEvent(f.ctx, f.streams.Events, id)
	if err != nil {
		t.Fatal(err)
	}
	ev := last.Next(kind, time.Now())
	set(&ev)
	if _, err := jobs.PublishEvent(f.ctx, f.js, ev, seq); err != nil {
		t.Fatalf("forge %s event: %v", kind, err)
	}
}

// TestRunnerCredentialsCannotTakeOverAJob stores what a compromised runner
// could: events naming another owner, a second final event after the real
// one, and attempts at new owner and end records. The gateway keeps
// showing the job to its real owner only, as it really ended.
func TestRunnerCredentialsCannotTakeOverAJob(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t)
	alice, bob := sys.As(testsys.Token(t, "alice", false, time.Hour)), sys.As(testsys.Token(t, "bob", false, time.Hour))
	f := newForger(t, sys)

	done := alice.Submit(t, "demo", `{"steps":1,"step_ms":0}`)
	end := alice.WaitStatus(t, done.ID, jobs.StatusSucceeded, 20*time.Second)
	running := alice.Submit(t, "demo", `{"steps":10000,"step_ms":10}`)
	alice.WaitStatus(t, running.ID, jobs.StatusRunning, 20*time.Second)

	toBob := func(e *jobs.Event) { e.Owner = "user:bob" }
	f.append(t, done.ID, jobs.KindProgress, toBob)
	f.append(t, done.ID, jobs.KindFailed, func(e *jobs.Event) {
		toBob(e)
		e.Status, e.Error = jobs.StatusFailed, &jobs.Error{Code: "forged", Message: "forged"}
	})
	f.append(t, running.ID, jobs.KindProgress, toBob)
	// The end record is written once: a second one is refused by the
	// server, also without the writer's own "expect an empty subject".
	if _, err := f.js.Publish(f.ctx, jobs.EndSubject(done.ID), []byte(`{"owner":"user:bob","seq":1,"status":"failed"}`)); err == nil {
		t.Errorf("a second record on %s was stored", jobs.EndSubject(done.ID))
	}
	// A second request of the job (only the gateway may write requests,
	// and it fences them; this one is not fenced) names no new owner: the
	// owner is the job's first request's.
	second, _ := json.Marshal(jobs.Request{ID: done.ID, Type: "demo", CreatedAt: time.Now(), Owner: "user:bob"})
	if _, err := f.js.Publish(f.ctx, jobs.QueueSubject("other", done.ID), second); err != nil {
		t.Fatal(err)
	}
	if err := jobs.RecordEnd(f.ctx, f.js, jobs.Event{JobID: done.ID, Status: jobs.StatusFailed}, 1); !errors.Is(err, jobs.ErrRecorded) {
		t.Errorf("RecordEnd over an existing end: %v, want ErrRecorded", err)
	}

	isEnd := func(what string, s jobs.Snapshot) {
		t.Helper()
		if s.ID != done.ID || s.Status != jobs.StatusSucceeded || s.Seq != end.Seq || s.Error != nil {
			t.Errorf("%s: %s seq %d %+v, want the real end: succeeded seq %d", what, s.Status, s.Seq, s.Error, end.Seq)
		}
	}
	// GET.
	if s, code := alice.Get(t, done.ID); code != http.StatusOK {
		t.Errorf("GET as the owner: %d", code)
	} else {
		isEnd("GET", s)
	}
	if s, code := alice.Get(t, running.ID); code != http.StatusOK || s.Status != jobs.StatusRunning {
		t.Errorf("GET of the running job as the owner: %d %s", code, s.Status)
	}
	for _, id := range []string{done.ID, running.ID} {
		if _, code := bob.Get(t, id); code != http.StatusNotFound {
			t.Errorf("GET %s as the forged owner: %d, want 404", id, code)
		}
	}
	// The list.
	alice.WaitListed(t, done.ID, running.ID)
	var mine, bobs struct{ Jobs []jobs.Snapshot }
	alice.Do(t, "GET", "/api/jobs", "", "", nil, &mine)
	bob.Do(t, "GET", "/api/jobs", "", "", nil, &bobs)
	if len(mine.Jobs) != 2 || len(bobs.Jobs) != 0 {
		t.Errorf("lists: the owner sees %d jobs, the forged owner %d; want 2 and 0", len(mine.Jobs), len(bobs.Jobs))
	} else {
		isEnd("list", mine.Jobs[1])
	}
	// The WebSocket's first snapshot.
	ws := dialWS(t, alice)
	ws.send(`{"op":"watch","job_id":"` + done.ID + `"}`)
	if m := ws.read(); m.Op != "event" {
		t.Errorf("watch as the owner: %+v", m)
	} else {
		isEnd("watch", jobs.SnapshotOf(m.Event))
	}
	bws := dialWS(t, bob)
	bws.send(`{"op":"watch","job_id":"` + done.ID + `"}`)
	if m := bws.read(); m.Op != "error" || m.Code != "not_found" {
		t.Errorf("watch as the forged owner: %+v", m)
	}
	// SSE: the current state, and the history up to the real end.
	for _, path := range []string{"/api/jobs/" + done.ID + "/events", "/api/jobs/" + done.ID + "/events?after_seq=0"} {
		msgs := readSSE(t, alice, path, alice.Header())
		if len(msgs) == 0 {
			t.Errorf("SSE %s: no events", path)
			continue
		}
		isEnd("SSE "+path, jobs.SnapshotOf(msgs[len(msgs)-1].data))
	}
	if r := bob.Do(t, "GET", "/api/jobs/"+done.ID+"/events", "", "", nil, nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("SSE as the forged owner: %d", r.StatusCode)
	}
	// Cancel: the ended job stays as it ended; the running one is the
	// owner's to cancel, not the forged owner's.
	var finished struct{ Job jobs.Snapshot }
	if r := alice.Do(t, "POST", "/api/jobs/"+done.ID+"/cancel", "", "", nil, &finished); r.StatusCode != http.StatusConflict {
		t.Errorf("cancel the ended job: %d, want 409", r.StatusCode)
	} else {
		isEnd("cancel", finished.Job)
	}
	if code, _ := bob.Cancel(t, running.ID, ""); code != http.StatusNotFound {
		t.Errorf("cancel as the forged owner: %d, want 404", code)
	}
	if code, _ := alice.Cancel(t, running.ID, ""); code != http.StatusAccepted {
		t.Errorf("cancel as the owner: %d, want 202", code)
	}
	alice.WaitStatus(t, running.ID, jobs.StatusCanceled, 20*time.Second)
}

// TestListCursorRevealsNothing: an owner with no jobs, whose list scan
// passes other owners' jobs, gets a cursor that names none of them; a
// cursor works only for the owner it was made for, and a tampered one is
// refused.
func TestListCursorRevealsNothing(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner())
	alice, bob := sys.As(testsys.Token(t, "alice", false, time.Hour)), sys.As(testsys.Token(t, "bob", false, time.Hour))
	var ids []string
	for range 3 {
		ids = append(ids, alice.Submit(t, "demo", `{"steps":1}`).ID)
	}
	type page struct {
		Jobs       []jobs.Snapshot `json:"jobs"`
		NextCursor string          `json:"next_cursor"`
	}
	var p page
	alice.WaitListed(t, ids...)
	alice.Do(t, "GET", "/api/jobs?limit=1", "", "", nil, &p)
	if len(p.Jobs) != 1 || p.NextCursor == "" {
		t.Fatalf("page 1: %d jobs, cursor %q", len(p.Jobs), p.NextCursor)
	}
	for _, id := range ids {
		if strings.Contains(p.NextCursor, id) {
			t.Fatalf("cursor %q names job %s", p.NextCursor, id)
		}
	}
	var next page
	if r := alice.Do(t, "GET", "/api/jobs?limit=1&cursor="+p.NextCursor, "", "", nil, &next); r.StatusCode != 200 || len(next.Jobs) != 1 || next.Jobs[0].ID != ids[1] {
		t.Fatalf("page 2: %d %+v, want [%s]", r.StatusCode, next.Jobs, ids[1])
	}
	tampered := []byte(p.NextCursor)
	tampered[len(tampered)/2] ^= 1
	for who, c := range map[*testsys.System]string{alice: string(tampered), bob: p.NextCursor, sys: ids[0]} {
		var e struct{ Error jobs.Error }
		if r := who.Do(t, "GET", "/api/jobs?cursor="+c, "", "", nil, &e); r.StatusCode != 400 || e.Error.Code != "bad_request" {
			t.Errorf("cursor %q: %d %+v, want 400 bad_request", c, r.StatusCode, e)
		}
	}
}
