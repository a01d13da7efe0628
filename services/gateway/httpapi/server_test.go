package httpapi_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/testsys"
	"github.com/jobwire/jobwire/services/gateway/httpapi"
	"github.com/jobwire/jobwire/shared/jobs"
)

// rawConn is a plain TCP connection to the system, for requests no
// well-behaved client sends; every read has a deadline.
type rawConn struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t testing.TB, sys *testsys.System) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(sys.URL, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

func (rc *rawConn) write(s string) {
	rc.t.Helper()
	_ = rc.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatal(err)
	}
}

// response reads an answer that must come within wait.
func (rc *rawConn) response(req *http.Request, wait time.Duration) *http.Response {
	rc.t.Helper()
	_ = rc.c.SetReadDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(rc.r, req)
	if err != nil {
		rc.t.Fatalf("no answer within %v: %v", wait, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// A body that trickles in is refused once BODY_READ_TIMEOUT has passed.
func TestSlowBodyIsRefusedWith408(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner(), testsys.WithConfig(func(c *httpapi.Config) { c.BodyReadTimeout = 300 * time.Millisecond }))
	rc := dialRaw(t, sys)
	rc.write("POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"type\":")
	if resp := rc.response(nil, 10*time.Second); resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("slow body: %s, want 408", resp.Status)
	}
	if q, e := sys.StreamCounts(t); q != 0 || e != 0 {
		t.Fatalf("a refused body stored %d requests and %d events", q, e)
	}
}

// A kept-alive connection that sends nothing more is closed after IDLE_TIMEOUT.
func TestIdleConnectionIsClosed(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner(), testsys.WithConfig(func(c *httpapi.Config) { c.IdleTimeout = 300 * time.Millisecond }))
	rc := dialRaw(t, sys)
	rc.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp := rc.response(nil, 10*time.Second); resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %s", resp.Status)
	}
	_ = rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := rc.r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection after 5s: %v, want it closed (EOF)", err)
	}
}

// Headers over MAX_HEADER_BYTES get 431, also huge ones (the 2 MB).
func TestHugeHeaderGets431(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner(), testsys.WithConfig(func(c *httpapi.Config) { c.MaxHeaderBytes = 16 << 10 }))
	for _, size := range []int{100 << 10, 2 << 20} {
		rc := dialRaw(t, sys)
		// The whole request is sent before anything is read, as a naive client does.
		rc.write(fmt.Sprintf("GET /api/jobs HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", size)))
		if resp := rc.response(nil, 10*time.Second); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("%d-byte header: %s, want 431", size, resp.Status)
		}
	}
	// A header within the limit is served.
	if resp := sys.Do(t, "GET", "/api/jobs", "", "", map[string]string{"X-Pad": strings.Repeat("a", 8<<10)}, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("8 KiB header: %d", resp.StatusCode)
	}
}

// WebSockets and SSE streams outlive the body deadline.
func TestLongLivedResponsesOutliveTheBodyDeadline(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithConfig(func(c *httpapi.Config) { c.BodyReadTimeout = 200 * time.Millisecond }))
	ws := dialWS(t, sys)
	snap := sys.Submit(t, "demo", `{"steps":10,"step_ms":100}`)
	start := time.Now()
	ws.send(`{"op":"watch","job_id":"` + snap.ID + `"}`)
	ws.readUntilTerminal(snap.ID)
	if time.Since(start) < 500*time.Millisecond {
		t.Fatalf("the job ended in %v: too soon to prove anything", time.Since(start))
	}
	snap = sys.Submit(t, "demo", `{"steps":10,"step_ms":100}`)
	msgs := readSSE(t, sys, "/api/jobs/"+snap.ID+"/events", nil)
	if last := msgs[len(msgs)-1].data; last.Status != jobs.StatusSucceeded {
		t.Fatalf("SSE ended with %+v, want the final event", last)
	}
}
