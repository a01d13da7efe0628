package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/testsys"
	"github.com/jobwire/jobwire/services/gateway/httpapi"
	"github.com/jobwire/jobwire/shared/jobs"
)

func TestSubmitRunsToSuccess(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t)
	var snap jobs.Snapshot
	resp := sys.Do(t, "POST", "/api/jobs", "application/json", `{"type":"demo","input":{"steps":5,"step_ms":5}}`, nil, &snap)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if err := jobs.ValidateID(snap.ID); err != nil {
		t.Fatalf("id %q: %v", snap.ID, err)
	}
	if loc := resp.Header.Get("Location"); loc != "/api/jobs/"+snap.ID {
		t.Errorf("Location = %q", loc)
	}
	if snap.Status != jobs.StatusQueued || snap.Type != "demo" || snap.CreatedAt == nil {
		t.Errorf("202 body = %+v, want a queued demo job with created_at", snap)
	}
	// Read-your-writes: the job is visible at once.
	if _, code := sys.Get(t, snap.ID); code != http.StatusOK {
		t.Fatalf("GET right after 202: %d", code)
	}
	done := sys.WaitStatus(t, snap.ID, jobs.StatusSucceeded, 20*time.Second)
	if done.Percent == nil || *done.Percent != 100 || done.Attempt != 1 || done.Seq < 3 {
		t.Errorf("final snapshot = %+v", done)
	}
	if string(done.Result) != `{"steps":5}` {
		t.Errorf("result = %s", done.Result)
	}
	if done.StartedAt == nil || done.EndedAt == nil || done.EndedAt.Before(*done.StartedAt) {
		t.Errorf("timestamps = started %v ended %v", done.StartedAt, done.EndedAt)
	}
}

func TestFailAtStepFails(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t)
	snap := sys.Submit(t, "demo", `{"steps":5,"step_ms":1,"fail_at_step":3}`)
	done := sys.WaitStatus(t, snap.ID, jobs.StatusFailed, 20*time.Second)
	if done.Error == nil || done.Error.Code != "demo_failure" || !strings.Contains(done.Error.Message, "step 3") {
		t.Errorf("error = %+v", done.Error)
	}
	if done.Percent == nil || *done.Percent != 40 {
		t.Errorf("percent = %v, want 40 (2 of 5 steps done)", done.Percent)
	}
}

func TestGetUnknownAndInvalidIDs(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner())
	cases := []struct {
		path string
		code int
		want string
	}{
		{"/api/jobs/" + jobs.NewID(time.Now()), 404, "not_found"},
		{"/api/jobs/a.b", 400, "invalid_id"},
		{"/api/jobs/%2A", 400, "invalid_id"},
		{"/api/jobs/%3E", 400, "invalid_id"},
		{"/api/jobs/a%20b", 400, "invalid_id"},
		{"/api/jobs/" + strings.Repeat("a", 65), 400, "invalid_id"},
	}
	for _, c := range cases {
		var body struct{ Error jobs.Error }
		resp := sys.Do(t, "GET", c.path, "", "", nil, &body)
		if resp.StatusCode != c.code || body.Error.Code != c.want || body.Error.Message == "" {
			t.Errorf("GET %s = %d %+v, want %d %s", c.path, resp.StatusCode, body, c.code, c.want)
		}
	}
}

func TestBadSubmissionsChangeNothing(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner(), testsys.WithConfig(func(c *httpapi.Config) { c.MaxBodyBytes = 2048 }))
	json := "application/json"
	cases := []struct {
		name, contentType, body string
		code                    int
		want                    string
	}{
		{"malformed JSON", json, `{"type":"demo",`, 400, "bad_request"},
		{"not an object", json, `[1,2]`, 400, "bad_request"},
		{"trailing data", json, `{"type":"demo"} {}`, 400, "bad_request"},
		{"missing type", json, `{"input":{}}`, 400, "bad_request"},
		{"unknown field", json, `{"type":"demo","owner":"x"}`, 400, "bad_request"},
		{"unknown type", json, `{"type":"nope"}`, 422, "unknown_type"},
		{"type not a token", json, `{"type":"a.b"}`, 422, "unknown_type"},
		{"steps too small", json, `{"type":"demo","input":{"steps":0}}`, 422, "invalid_input"},
		{"steps too large", json, `{"type":"demo","input":{"steps":10001}}`, 422, "invalid_input"},
		{"step_ms negative", json, `{"type":"demo","input":{"step_ms":-1}}`, 422, "invalid_input"},
		{"step_ms too large", json, `{"type":"demo","input":{"step_ms":60001}}`, 422, "invalid_input"},
		{"unknown input field", json, `{"type":"demo","input":{"stepz":1}}`, 422, "invalid_input"},
		{"input not an object", json, `{"type":"demo","input":"x"}`, 422, "invalid_input"},
		{"oversized body", json, `{"type":"demo","input":{"pad":"` + strings.Repeat("x", 4096) + `"}}`, 413, "too_large"},
		{"not JSON content type", "text/plain", `{"type":"demo"}`, 415, "unsupported_media_type"},
		{"no content type", "", `{"type":"demo"}`, 415, "unsupported_media_type"},
		{"a charset other than UTF-8", json + "; charset=latin1", `{"type":"demo"}`, 415, "unsupported_media_type"},
		{"UTF-16", json + "; charset=utf-16", `{"type":"demo"}`, 415, "unsupported_media_type"},
	}
	for _, c := range cases {
		var body struct{ Error jobs.Error }
		resp := sys.Do(t, "POST", "/api/jobs", c.contentType, c.body, nil, &body)
		if resp.StatusCode != c.code || body.Error.Code != c.want || body.Error.Message == "" {
			t.Errorf("%s: %d %+v, want %d %s", c.name, resp.StatusCode, body, c.code, c.want)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", c.name, ct)
		}
	}
	if q, e := sys.StreamCounts(t); q != 0 || e != 0 {
		t.Errorf("bad submissions stored %d requests and %d events, want none", q, e)
	}
	// A good submission after all that is stored: the check above can fail.
	// UTF-8 may be named.
	if resp := sys.Do(t, "POST", "/api/jobs", json+"; charset=UTF-8", `{"type":"demo","input":{"steps":1}}`, nil, nil); resp.StatusCode != 202 {
		t.Fatalf("charset=UTF-8: %d, want 202", resp.StatusCode)
	}
	if q, e := sys.StreamCounts(t); q != 1 || e != 0 {
		t.Errorf("after one good submission: %d requests, %d events, want 1 and 0 (the request is the queued event)", q, e)
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner())
	key := map[string]string{"Idempotency-Key": "order-42"}
	body := `{"type":"demo","input":{"steps":3}}`
	var first, second jobs.Snapshot
	if r := sys.Do(t, "POST", "/api/jobs", "application/json", body, key, &first); r.StatusCode != 202 {
		t.Fatalf("first: %d", r.StatusCode)
	}
	r := sys.Do(t, "POST", "/api/jobs", "application/json", body, key, &second)
	if r.StatusCode != 202 || second.ID != first.ID || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry: %d id %s (first %s) replayed=%q", r.StatusCode, second.ID, first.ID, r.Header.Get("Idempotent-Replayed"))
	}
	if q, _ := sys.StreamCounts(t); q != 1 {
		t.Errorf("queue holds %d requests, want 1", q)
	}
	var e struct{ Error jobs.Error }
	r = sys.Do(t, "POST", "/api/jobs", "application/json", `{"type":"demo","input":{"steps":4}}`, key, &e)
	if r.StatusCode != 422 || e.Error.Code != "idempotency_key_reused" {
		t.Errorf("same key, other body: %d %+v", r.StatusCode, e)
	}
	other := sys.Submit(t, "demo", `{"steps":3}`)
	if other.ID == first.ID {
		t.Error("a submission without the key reused the job")
	}
}

func TestJobTypes(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t)
	var body struct {
		JobTypes []jobs.TypeInfo `json:"job_types"`
	}
	// Runners register types as they start; the gateway follows.
	for deadline := time.Now().Add(10 * time.Second); len(body.JobTypes) == 0 && time.Now().Before(deadline); {
		sys.Do(t, "GET", "/api/job-types", "", "", nil, &body)
	}
	if len(body.JobTypes) != 1 || body.JobTypes[0].Type != "demo" || body.JobTypes[0].Description == "" ||
		!strings.Contains(string(body.JobTypes[0].ExampleInput), `"steps":20`) {
		t.Fatalf("job types = %+v", body.JobTypes)
	}
}

func TestListNewestFirstWithFiltersAndCursor(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t)
	a := sys.Submit(t, "demo", `{"steps":1,"step_ms":0}`)
	b := sys.Submit(t, "demo", `{"steps":1,"step_ms":0,"fail_at_step":1}`)
	c := sys.Submit(t, "demo", `{"steps":1,"step_ms":0}`)
	sys.WaitStatus(t, a.ID, jobs.StatusSucceeded, 20*time.Second)
	sys.WaitStatus(t, b.ID, jobs.StatusFailed, 20*time.Second)
	sys.WaitStatus(t, c.ID, jobs.StatusSucceeded, 20*time.Second)
	sys.WaitListed(t, a.ID, b.ID, c.ID) // the index follows the 202s by a few milliseconds

	type page struct {
		Jobs       []jobs.Snapshot `json:"jobs"`
		NextCursor string          `json:"next_cursor"`
	}
	ids := func(p page) (out []string) {
		for _, j := range p.Jobs {
			out = append(out, j.ID)
		}
		return out
	}
	var p1, p2, failed, none page
	sys.Do(t, "GET", "/api/jobs?limit=2", "", "", nil, &p1)
	if got := ids(p1); len(got) != 2 || got[0] != c.ID || got[1] != b.ID || p1.NextCursor == "" {
		t.Fatalf("page 1 = %v cursor %q, want [%s %s] and a cursor", got, p1.NextCursor, c.ID, b.ID)
	}
	sys.Do(t, "GET", "/api/jobs?limit=2&cursor="+p1.NextCursor, "", "", nil, &p2)
	if got := ids(p2); len(got) != 1 || got[0] != a.ID || p2.NextCursor != "" {
		t.Fatalf("page 2 = %v cursor %q, want [%s]", got, p2.NextCursor, a.ID)
	}
	sys.Do(t, "GET", "/api/jobs?status=failed", "", "", nil, &failed)
	if got := ids(failed); len(got) != 1 || got[0] != b.ID {
		t.Fatalf("failed = %v, want [%s]", got, b.ID)
	}
	sys.Do(t, "GET", "/api/jobs?type=other", "", "", nil, &none)
	if len(none.Jobs) != 0 {
		t.Fatalf("type=other = %v", ids(none))
	}
	// A cursor is a position in one list: the list of failed jobs numbers
	// its jobs apart, so the cursor of the list of all jobs is refused there.
	for _, q := range []string{"status=done", "limit=0", "limit=x", "cursor=a.b", "type=*", "status=failed&cursor=" + p1.NextCursor} {
		var e struct{ Error jobs.Error }
		if r := sys.Do(t, "GET", "/api/jobs?"+q, "", "", nil, &e); r.StatusCode != 400 || e.Error.Code != "bad_request" {
			t.Errorf("?%s: %d %+v", q, r.StatusCode, e)
		}
	}
}

func TestJobAcceptedWithoutRunnerRunsWhenOneStarts(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner())
	snap := sys.Submit(t, "demo", `{"steps":2,"step_ms":1}`)
	if s, _ := sys.Get(t, snap.ID); s.Status != jobs.StatusQueued {
		t.Fatalf("status without a runner = %s", s.Status)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	testsys.StartRunner(t, ctx, &wg, sys.NATS, testsys.Logger(t))
	sys.WaitStatus(t, snap.ID, jobs.StatusSucceeded, 20*time.Second)
}

func TestUnavailableNATSGives503(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner())
	sys.NATS.Shutdown()
	sys.NATS.WaitForShutdown()
	deadline := time.Now().Add(10 * time.Second)
	for sys.NC.IsConnected() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	var e struct{ Error jobs.Error }
	r := sys.Do(t, "POST", "/api/jobs", "application/json", `{"type":"demo"}`, nil, &e)
	if r.StatusCode != 503 || r.Header.Get("Retry-After") == "" || e.Error.Code != "unavailable" {
		t.Errorf("submit with NATS down: %d Retry-After=%q %+v", r.StatusCode, r.Header.Get("Retry-After"), e)
	}
	if r := sys.Do(t, "GET", "/readyz", "", "", nil, nil); r.StatusCode != 503 {
		t.Errorf("readyz with NATS down: %d", r.StatusCode)
	}
	if r := sys.Do(t, "GET", "/healthz", "", "", nil, nil); r.StatusCode != 200 {
		t.Errorf("healthz: %d", r.StatusCode)
	}
}

func TestExpiredJobIsToldFromUnknown(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithConfig(func(c *httpapi.Config) { c.EventsMaxAge = 2 * time.Second }))
	snap := sys.Submit(t, "demo", `{"steps":1,"step_ms":0}`)
	sys.WaitStatus(t, snap.ID, jobs.StatusSucceeded, 20*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var e struct{ Error jobs.Error }
		r := sys.Do(t, "GET", "/api/jobs/"+snap.ID, "", "", nil, &e)
		if r.StatusCode == http.StatusGone {
			if e.Error.Code != "expired" {
				t.Fatalf("410 with %+v", e)
			}
			break
		}
		if r.StatusCode != http.StatusOK || time.Now().After(deadline) {
			t.Fatalf("GET an aged-out job: %d %+v, want 410 expired", r.StatusCode, e)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var e struct{ Error jobs.Error }
	if r := sys.Do(t, "GET", "/api/jobs/"+jobs.NewID(time.Now()), "", "", nil, &e); r.StatusCode != 404 {
		t.Fatalf("an unknown job: %d", r.StatusCode)
	}
	if r := sys.Do(t, "GET", "/api/jobs/"+snap.ID+"/events", "", "", nil, &e); r.StatusCode != http.StatusGone || e.Error.Code != "expired" {
		t.Fatalf("SSE of an aged-out job: %d %+v", r.StatusCode, e)
	}
	ws := dialWS(t, sys)
	ws.send(`{"op":"watch","job_id":"` + snap.ID + `"}`)
	if m := ws.read(); m.Op != "error" || m.Code != "expired" {
		t.Fatalf("watching an aged-out job: %+v", m)
	}
}

func TestWrongMethodIsAJSONError(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner())
	var e struct{ Error jobs.Error }
	r := sys.Do(t, "DELETE", "/api/jobs", "", "", nil, &e)
	if r.StatusCode != 405 || e.Error.Code != "method_not_allowed" {
		t.Fatalf("DELETE /api/jobs: %d %+v", r.StatusCode, e)
	}
}
