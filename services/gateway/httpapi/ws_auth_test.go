package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jobwire/jobwire/internal/testsys"
	"github.com/jobwire/jobwire/shared/jobs"
)

// dialWithTokenSubprotocol opens /ws as a browser must with a bearer token:
// no Authorization header, no cookie, the token offered as the subprotocol
// "jobwire.bearer.<token>" next to "jobwire".
func dialWithTokenSubprotocol(t *testing.T, sys *testsys.System, token string) (*wsClient, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(sys.URL, "http")+"/ws", &websocket.DialOptions{
		HTTPClient:   &http.Client{}, // no cookie jar: the token alone says who this is
		Subprotocols: []string{"jobwire", "jobwire.bearer." + token},
	})
	if err != nil {
		return nil, resp, err
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return &wsClient{t: t, c: c, ct: ctx}, resp, nil
}

func TestWebSocketTokenAsSubprotocol(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t)
	alice := sys.As(testsys.Token(t, "alice", false, time.Hour))
	bob := sys.As(testsys.Token(t, "bob", false, time.Hour))
	mine := alice.Submit(t, "demo", `{"steps":2,"step_ms":1}`).ID
	theirs := bob.Submit(t, "demo", `{"steps":2,"step_ms":1}`).ID

	ws, _, err := dialWithTokenSubprotocol(t, sys, testsys.Token(t, "alice", false, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got := ws.c.Subprotocol(); got != "jobwire" {
		t.Errorf("server chose subprotocol %q; want \"jobwire\" (a browser drops the connection otherwise)", got)
	}

	ws.send(`{"op":"watch","job_id":"` + theirs + `"}`)
	if m := ws.read(); m.Op != "error" || m.Code != "not_found" || m.JobID != theirs {
		t.Errorf("watching another owner's job: got %+v; want error not_found", m)
	}
	ws.send(`{"op":"watch","job_id":"` + mine + `","after_seq":0}`)
	evs := ws.readUntilTerminal(mine)
	if last := evs[len(evs)-1]; last.Status != jobs.StatusSucceeded {
		t.Errorf("own job ended %s; want succeeded", last.Status)
	}

	// Only GET /ws reads a token there: elsewhere the header means nothing.
	var list struct {
		Jobs []jobs.Snapshot `json:"jobs"`
	}
	resp := sys.As("").Do(t, "GET", "/api/jobs", "", "", map[string]string{
		"Sec-WebSocket-Protocol": "jobwire, jobwire.bearer." + testsys.Token(t, "alice", false, time.Hour),
	}, &list)
	if resp.StatusCode != http.StatusOK || len(list.Jobs) != 0 {
		t.Errorf("GET /api/jobs with the token as a subprotocol header: %d, %d jobs; want a fresh session's empty list", resp.StatusCode, len(list.Jobs))
	}

	for name, token := range map[string]string{
		"bad signature": testsys.Token(t, "alice", false, time.Hour) + "x",
		"expired":       testsys.Token(t, "alice", false, -time.Hour),
		"empty":         "",
	} {
		_, resp, err := dialWithTokenSubprotocol(t, sys, token)
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			code := 0
			if resp != nil {
				code = resp.StatusCode
			}
			t.Errorf("%s token: dial answered %d, %v; want 401", name, code, err)
		}
	}
}
