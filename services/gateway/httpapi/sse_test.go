package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/testsys"
	"github.com/jobwire/jobwire/shared/jobs"
)

type sseMessage struct {
	id    uint64
	event string
	data  jobs.Event
}

// readSSE reads a whole event stream (as curl -N would) until it ends. It
// fails when the stream is silent for eventWait.
func readSSE(t *testing.T, sys *testsys.System, path string, header map[string]string) []sseMessage {
	t.Helper()
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	silent := fmt.Errorf("GET %s: no SSE line within %v", path, eventWait)
	idle := time.AfterFunc(eventWait, func() { cancel(silent) })
	defer idle.Stop()
	req, _ := http.NewRequestWithContext(ctx, "GET", sys.URL+path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	// fail names the silence, when that is what ended the read.
	fail := func(what string, err error) {
		t.Helper()
		if c := context.Cause(ctx); c != nil {
			err = c
		}
		t.Fatalf("%s: %v", what, err)
	}
	resp, err := sys.HTTPClient().Do(req)
	if err != nil {
		fail("GET "+path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var msgs []sseMessage
	var cur sseMessage
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		idle.Reset(eventWait)
		line := sc.Text()
		switch {
		case line == "":
			msgs = append(msgs, cur)
			cur = sseMessage{}
		case strings.HasPrefix(line, "id: "):
			cur.id, _ = strconv.ParseUint(line[4:], 10, 64)
		case strings.HasPrefix(line, "event: "):
			cur.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			if line[6:] != "{}" {
				if err := json.Unmarshal([]byte(line[6:]), &cur.data); err != nil {
					t.Fatalf("data %q: %v", line, err)
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		fail("stream broke", err)
	}
	return msgs
}

func TestSSEStreamsToTheEndAndResumes(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithTypes(loggerType(100, 10, 2*time.Millisecond)))
	snap := sys.Submit(t, "logger", `{}`)
	all := readSSE(t, sys, "/api/jobs/"+snap.ID+"/events?after_seq=0", nil)
	var ids []uint64
	for _, m := range all {
		if m.id != m.data.Seq || m.data.JobID != snap.ID {
			t.Fatalf("message %+v: id and seq differ", m)
		}
		ids = append(ids, m.id)
	}
	checkExact(t, ids, 1)
	last := all[len(all)-1]
	if last.data.Status != jobs.StatusSucceeded {
		t.Fatalf("the stream ended at %+v, not at the final event", last.data)
	}

	// Resume with Last-Event-ID, as EventSource does after a reconnect.
	rest := readSSE(t, sys, "/api/jobs/"+snap.ID+"/events", map[string]string{"Last-Event-ID": "40"})
	ids = ids[:0]
	for _, m := range rest {
		ids = append(ids, m.id)
	}
	checkExact(t, ids, 41)
	if ids[len(ids)-1] != last.id {
		t.Fatalf("resumed stream ended at %d, want %d", ids[len(ids)-1], last.id)
	}

	// Without a resume point: the current state, then the end.
	now := readSSE(t, sys, "/api/jobs/"+snap.ID+"/events", nil)
	if len(now) != 1 || now[0].id != last.id {
		t.Fatalf("finished job streamed %+v, want only its final state", now)
	}
}

func TestSSEErrors(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t)
	snap := sys.Submit(t, "demo", `{"steps":1,"step_ms":0}`)
	cases := []struct {
		path, lastID string
		code         int
		want         string
	}{
		{"/api/jobs/" + jobs.NewID(time.Now()) + "/events", "", 404, "not_found"},
		{"/api/jobs/%2A/events", "", 400, "invalid_id"},
		{"/api/jobs/" + snap.ID + "/events", "abc", 400, "bad_request"},
		{"/api/jobs/" + snap.ID + "/events?after_seq=-1", "", 400, "bad_request"},
	}
	for _, c := range cases {
		var body struct{ Error jobs.Error }
		h := map[string]string{}
		if c.lastID != "" {
			h["Last-Event-ID"] = c.lastID
		}
		r := sys.Do(t, "GET", c.path, "", "", h, &body)
		if r.StatusCode != c.code || body.Error.Code != c.want {
			t.Errorf("%s (Last-Event-ID %q): %d %+v, want %d %s", c.path, c.lastID, r.StatusCode, body, c.code, c.want)
		}
	}
	if n := sys.GW.Live().Stats().Subscriptions; n != 0 {
		t.Errorf("failed streams left %d subscriptions", n)
	}
}
