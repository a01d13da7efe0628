package httpapi_test

// These tests hold the machine-readable contract in shared/jobs/schema to
// what the system really sends: every stored event, every HTTP answer and
// every WebSocket message of real jobs is validated against the documents,
// and the routes of the router are the paths of openapi.json.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/go-chi/chi/v5"
	"github.com/jobwire/jobwire/internal/testsys"
	"github.com/jobwire/jobwire/services/gateway/httpapi"
	"github.com/jobwire/jobwire/services/runner/worker"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/jobwire/jobwire/shared/jobs/schema"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// contract validates JSON against the documents of shared/jobs/schema.
type contract struct {
	t       testing.TB
	c       *jsonschema.Compiler
	openapi map[string]any
}

func newContract(t testing.TB) *contract {
	t.Helper()
	c, err := schema.NewCompiler()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(schema.Bytes(schema.OpenAPI), &doc); err != nil {
		t.Fatal(err)
	}
	return &contract{t: t, c: c, openapi: doc}
}

// validate checks data against the schema at ref (relative to
// schema.BaseURI, e.g. "event.schema.json" or
// "openapi.json#/components/schemas/Snapshot").
func (k *contract) validate(ref string, data []byte) error {
	k.t.Helper()
	sch, err := k.c.Compile(schema.BaseURI + ref)
	if err != nil {
		k.t.Fatalf("compile %s: %v", ref, err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return sch.Validate(v)
}

// check fails the test unless data satisfies the schema at ref.
func (k *contract) check(ref string, data []byte, what string) {
	k.t.Helper()
	if err := k.validate(ref, data); err != nil {
		k.t.Errorf("%s does not satisfy %s:\n%s\n%v", what, ref, data, err)
	}
}

// lookup follows a local reference ("#/a/b") in openapi.json.
func (k *contract) lookup(ref string) map[string]any {
	k.t.Helper()
	var cur any = k.openapi
	for _, tok := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, _ := cur.(map[string]any)
		cur = m[tok]
	}
	m, ok := cur.(map[string]any)
	if !ok {
		k.t.Fatalf("openapi.json has no object at %s", ref)
	}
	return m
}

// deref returns the object at ptr in openapi.json, following a $ref there,
// and the pointer where the object really is.
func (k *contract) deref(ptr string) (map[string]any, string) {
	k.t.Helper()
	obj := k.lookup(ptr)
	if r, ok := obj["$ref"].(string); ok {
		return k.lookup(r), r
	}
	return obj, ptr
}

func pointerToken(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// checkResponse checks an HTTP answer against what openapi.json documents
// for the operation (path template and method): its status must be
// documented, its media type too, a JSON body must satisfy the documented
// schema, and the documented headers must be there and fit.
func (k *contract) checkResponse(template, method string, resp *http.Response, body []byte) {
	k.t.Helper()
	what := fmt.Sprintf("%s %s (%s) -> %d", method, resp.Request.URL.RequestURI(), template, resp.StatusCode)
	opPtr := "#/paths/" + pointerToken(template) + "/" + strings.ToLower(method)
	op := k.lookup(opPtr)
	responses, _ := op["responses"].(map[string]any)
	code := strconv.Itoa(resp.StatusCode)
	if _, ok := responses[code]; !ok {
		k.t.Errorf("%s: status %s is not documented (documented: %v)", what, code, keys(responses))
		return
	}
	k.checkAnswer(what, opPtr+"/responses/"+code, resp, body)
}

// checkAnswer checks an HTTP answer against the Response Object at ptr in
// openapi.json (or the one its $ref names): its media type, its JSON body
// (there is none to check for HEAD) and its headers.
func (k *contract) checkAnswer(what, ptr string, resp *http.Response, body []byte) {
	k.t.Helper()
	r, ptr := k.deref(ptr)
	content, _ := r["content"].(map[string]any)
	if len(content) == 0 {
		if len(body) > 0 {
			k.t.Errorf("%s: documented without a body, but has %q", what, body)
		}
	} else {
		mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if _, ok := content[mt]; err != nil || !ok {
			k.t.Errorf("%s: Content-Type %q is not documented (documented: %v)", what, resp.Header.Get("Content-Type"), keys(content))
		} else if mt == "application/json" && resp.Request.Method != http.MethodHead {
			k.check("openapi.json"+ptr+"/content/application~1json/schema", body, what)
		}
	}
	headers, _ := r["headers"].(map[string]any)
	for name := range headers {
		h, hptr := k.deref(ptr + "/headers/" + pointerToken(name))
		value := resp.Header.Get(name)
		if value == "" {
			if req, _ := h["required"].(bool); req {
				k.t.Errorf("%s: required header %s is missing", what, name)
			}
			continue
		}
		// A header value is text; as JSON it is a number where the schema
		// says integer, a string otherwise.
		inst := testsys.MustJSON(value)
		hs, _ := h["schema"].(map[string]any)
		if typ, _ := hs["type"].(string); typ == "integer" {
			inst = value
		}
		k.check("openapi.json"+hptr+"/schema", []byte(inst), what+": header "+name)
	}
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// call sends a request and returns the answer with its whole body.
func call(t testing.TB, sys *testsys.System, method, path, contentType, body string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	return sys.Call(t, method, path, contentType, body, header)
}

// errorCode is the code of an error answer ("" if there is none).
func errorCode(resp *http.Response, body []byte) string {
	if resp.StatusCode < 400 {
		return ""
	}
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	return e.Error.Code
}

// storedEvents reads every stored event of job id, oldest first, as the
// raw JSON other services receive.
func storedEvents(t testing.TB, sys *testsys.System, id string) [][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	subject := jobs.JobSubjects(id)
	info, err := sys.Streams.Events.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	cons, err := sys.Streams.Events.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for uint64(len(out)) < n {
		m, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			t.Fatalf("events of %s: read %d of %d: %v", id, len(out), n, err)
		}
		out = append(out, bytes.Clone(m.Data()))
	}
	return out
}

// contractFlakyType logs (also an empty line), fails its first attempt and
// succeeds on the second, so its history holds log, retrying and
// succeeded events.
func contractFlakyType() worker.JobType {
	return worker.JobType{
		Name:        "contract-flaky",
		Description: "logs, fails its first attempt, then succeeds",
		Retry:       worker.RetryPolicy{MaxAttempts: 2, BaseDelay: 10 * time.Millisecond, MaxDelay: 20 * time.Millisecond},
		Handler: func(ctx context.Context, job *worker.Job) (any, error) {
			job.Progress.Stage("checking")
			job.Progress.Log(fmt.Sprintf("attempt %d", job.Attempt))
			job.Progress.Log("")
			job.Progress.Count(1, 2)
			if job.Attempt == 1 {
				return nil, errors.New("the first attempt always fails")
			}
			return map[string]any{"attempt": job.Attempt, "ok": true}, nil
		},
	}
}

func TestContractStoredEvents(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithTypes(contractFlakyType()))
	k := newContract(t)

	// A type that is registered but that no runner serves: its job stays
	// queued until it is canceled.
	orphan, _ := json.Marshal(jobs.TypeInfo{Type: "contract-orphan", Description: "no runner serves it"})
	if _, err := sys.Streams.Types.Put(context.Background(), "contract-orphan", orphan); err != nil {
		t.Fatal(err)
	}

	// Every cancel request on NATS, whoever sends it.
	cancels := make(chan *nats.Msg, 16)
	sub, err := sys.NC.ChanSubscribe(jobs.AllCancel, cancels)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := sys.NC.Flush(); err != nil {
		t.Fatal(err)
	}

	succeeded := sys.Submit(t, "demo", `{"steps":3,"step_ms":1}`)
	failed := sys.Submit(t, "demo", `{"steps":3,"step_ms":1,"fail_at_step":2}`)
	retried := sys.Submit(t, "contract-flaky", `{}`)
	running := sys.Submit(t, "demo", `{"steps":10000,"step_ms":10}`)
	direct := sys.Submit(t, "demo", `{"steps":10000,"step_ms":10}`)
	queued := sys.Submit(t, "contract-orphan", `{"anything":["goes"]}`)

	// The request of a job no runner serves stays on its queue subject.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := sys.Streams.Events.GetLastMsgForSubject(ctx, jobs.QueueSubject("contract-orphan", queued.ID))
	if err != nil {
		t.Fatal(err)
	}
	k.check(schema.Request, req.Data, "the job request on "+req.Subject)
	var queuedReq jobs.Request
	if err := json.Unmarshal(req.Data, &queuedReq); err != nil || queuedReq.Owner == "" {
		t.Errorf("the job request on %s names no owner: %s (%v)", req.Subject, req.Data, err)
	}
	if got := req.Header.Get("Nats-Msg-Id"); got != queued.ID {
		t.Errorf("job request Nats-Msg-Id = %q, want the job id %s", got, queued.ID)
	}

	// The gateway asks the runner to cancel a running job; a plain NATS
	// request does the same and gets the runner's reply.
	sys.WaitStatus(t, running.ID, jobs.StatusRunning, 20*time.Second)
	sys.WaitStatus(t, direct.ID, jobs.StatusRunning, 20*time.Second)
	sys.WaitFor(t, running.ID, "a progress event", 20*time.Second, func(s jobs.Snapshot) bool { return s.Current > 0 })
	for _, id := range []string{running.ID, queued.ID} {
		if code, _ := sys.Cancel(t, id, `{"reason":"contract test"}`); code != http.StatusAccepted {
			t.Fatalf("cancel %s: %d", id, code)
		}
	}
	reply, err := sys.NC.Request(jobs.CancelSubject(direct.ID), []byte(`{"by":"contract-test","reason":"over NATS"}`), 10*time.Second)
	if err != nil {
		t.Fatalf("cancel request over NATS: %v", err)
	}
	k.check(schema.AsyncAPI+"#/components/schemas/CancelReply", reply.Data, "the runner's cancel reply")
	for n := 0; n < 2; n++ {
		select {
		case m := <-cancels:
			k.check(schema.AsyncAPI+"#/components/schemas/CancelRequest", m.Data, "the cancel request on "+m.Subject)
			if id, ok := jobs.IDFromCancelSubject(m.Subject); !ok || (id != running.ID && id != direct.ID) {
				t.Errorf("cancel request on %s", m.Subject)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("saw %d cancel requests on %s, want 2", n, jobs.AllCancel)
		}
	}

	// What the runner registered for its types.
	for _, typ := range []string{"demo", "contract-flaky"} {
		e, err := sys.Streams.Types.Get(ctx, typ)
		if err != nil {
			t.Fatal(err)
		}
		k.check(schema.AsyncAPI+"#/components/schemas/TypeInfo", e.Value(), "the registered type "+typ)
	}
	sys.WaitStatus(t, succeeded.ID, jobs.StatusSucceeded, 20*time.Second)
	sys.WaitStatus(t, failed.ID, jobs.StatusFailed, 20*time.Second)
	sys.WaitStatus(t, retried.ID, jobs.StatusSucceeded, 20*time.Second)
	sys.WaitStatus(t, running.ID, jobs.StatusCanceled, 20*time.Second)
	sys.WaitStatus(t, direct.ID, jobs.StatusCanceled, 20*time.Second)
	sys.WaitStatus(t, queued.ID, jobs.StatusCanceled, 20*time.Second)

	seen := map[string]int{}
	owners := map[string]int{} // every job here has one submitter
	for _, id := range []string{succeeded.ID, failed.ID, retried.ID, running.ID, direct.ID, queued.ID} {
		evs := storedEvents(t, sys, id)
		if len(evs) < 2 {
			t.Fatalf("job %s has %d events", id, len(evs))
		}
		for i, raw := range evs {
			what := fmt.Sprintf("event %d of job %s", i+1, id)
			k.check(schema.Event, raw, what)
			var head struct {
				JobID string `json:"job_id"`
				Seq   uint64 `json:"seq"`
				Kind  string `json:"kind"`
				Owner string `json:"owner"`
			}
			if err := json.Unmarshal(raw, &head); err != nil {
				t.Fatal(err)
			}
			if head.JobID != id || head.Seq != uint64(i+1) {
				t.Errorf("%s: job_id %q seq %d", what, head.JobID, head.Seq)
			}
			seen[head.Kind]++
			owners[head.Owner]++
		}
	}
	// Every event, whoever stored it (gateway or runner), names the owner.
	if len(owners) != 1 || owners[queuedReq.Owner] == 0 {
		t.Errorf("owners of the stored events: %v, want the request's owner %q on all", owners, queuedReq.Owner)
	}
	// Every kind of event was checked against the schema at least once.
	for _, kind := range []jobs.Kind{jobs.KindQueued, jobs.KindStarted, jobs.KindProgress, jobs.KindLog,
		jobs.KindRetrying, jobs.KindSucceeded, jobs.KindFailed, jobs.KindCanceled} {
		if seen[string(kind)] == 0 {
			t.Errorf("no %s event was checked (seen: %v)", kind, seen)
		}
	}
}

func TestContractHTTPAnswers(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t)
	k := newContract(t)
	const jobsPath, jobPath, cancelPath = "/api/jobs", "/api/jobs/{id}", "/api/jobs/{id}/cancel"

	// expect checks an answer's status and error code, then the contract.
	expect := func(template, method, path, ct, body string, hdr map[string]string, status int, code string) (*http.Response, []byte) {
		t.Helper()
		resp, b := call(t, sys, method, path, ct, body, hdr)
		if resp.StatusCode != status || errorCode(resp, b) != code {
			t.Fatalf("%s %s: %d %s, want %d %q", method, path, resp.StatusCode, b, status, code)
		}
		k.checkResponse(template, method, resp, b)
		return resp, b
	}
	snapshotOf := func(b []byte) jobs.Snapshot {
		t.Helper()
		var s jobs.Snapshot
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	const demo = `{"type":"demo","input":{"steps":3,"step_ms":1}}`

	// Submit, read, and the finished states.
	resp, b := expect(jobsPath, "POST", jobsPath, "application/json", demo, nil, 202, "")
	ok := snapshotOf(b)
	if resp.Header.Get("Location") != "/api/jobs/"+ok.ID {
		t.Errorf("Location = %q", resp.Header.Get("Location"))
	}
	expect(jobPath, "GET", "/api/jobs/"+ok.ID, "", "", nil, 200, "")
	sys.WaitStatus(t, ok.ID, jobs.StatusSucceeded, 20*time.Second)
	expect(jobPath, "GET", "/api/jobs/"+ok.ID, "", "", nil, 200, "")
	_, b = expect(jobsPath, "POST", jobsPath, "application/json", `{"type":"demo","input":{"steps":3,"step_ms":1,"fail_at_step":2}}`, nil, 202, "")
	bad := snapshotOf(b)
	sys.WaitStatus(t, bad.ID, jobs.StatusFailed, 20*time.Second)
	expect(jobPath, "GET", "/api/jobs/"+bad.ID, "", "", nil, 200, "")

	// Server-Sent Events: the current state, the whole history, a resume.
	const eventsPath = "/api/jobs/{id}/events"
	final := sys.WaitStatus(t, ok.ID, jobs.StatusSucceeded, time.Second)
	_, b = expect(eventsPath, "GET", "/api/jobs/"+ok.ID+"/events", "", "", nil, 200, "")
	if seqs := k.checkSSE(b, ok.ID); !slices.Equal(seqs, []uint64{final.Seq}) {
		t.Errorf("events of a finished job: seqs %v, want [%d]", seqs, final.Seq)
	}
	_, b = expect(eventsPath, "GET", "/api/jobs/"+ok.ID+"/events?after_seq=0", "", "", nil, 200, "")
	if seqs := k.checkSSE(b, ok.ID); len(seqs) != int(final.Seq) || seqs[0] != 1 {
		t.Errorf("whole history: seqs %v, want 1..%d", seqs, final.Seq)
	}
	_, b = expect(eventsPath, "GET", "/api/jobs/"+ok.ID+"/events", "", "", map[string]string{"Last-Event-ID": "2"}, 200, "")
	if seqs := k.checkSSE(b, ok.ID); len(seqs) == 0 || seqs[0] != 3 {
		t.Errorf("resume after 2: seqs %v", seqs)
	}
	expect(eventsPath, "GET", "/api/jobs/"+ok.ID+"/events?after_seq=x", "", "", nil, 400, "bad_request")
	expect(eventsPath, "GET", "/api/jobs/"+ok.ID+"/events", "", "", map[string]string{"Last-Event-ID": "-1"}, 400, "bad_request")
	expect(eventsPath, "GET", "/api/jobs/a.b/events", "", "", nil, 400, "invalid_id")
	expect(eventsPath, "GET", "/api/jobs/"+jobs.NewID(time.Now())+"/events", "", "", nil, 404, "not_found")

	// Idempotency.
	key := map[string]string{"Idempotency-Key": "contract-" + jobs.NewID(time.Now())}
	_, b = expect(jobsPath, "POST", jobsPath, "application/json", demo, key, 202, "")
	resp, b2 := expect(jobsPath, "POST", jobsPath, "application/json", demo, key, 202, "")
	if resp.Header.Get("Idempotent-Replayed") != "true" || snapshotOf(b2).ID != snapshotOf(b).ID {
		t.Errorf("replayed submit: Idempotent-Replayed %q, ids %s and %s", resp.Header.Get("Idempotent-Replayed"), snapshotOf(b).ID, snapshotOf(b2).ID)
	}
	expect(jobsPath, "POST", jobsPath, "application/json", `{"type":"demo","input":{"steps":4}}`, key, 422, "idempotency_key_reused")
	expect(jobsPath, "POST", jobsPath, "application/json", demo, map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}, 400, "bad_request")

	// Bad submissions.
	for _, c := range []struct {
		ct, body string
		status   int
		code     string
	}{
		{"application/json", `{"type":`, 400, "bad_request"},
		{"application/json", `{"type":"demo","urgency":1}`, 400, "bad_request"},
		{"application/json", `{"type":"demo","input":{"steps":1},"priority":9}`, 400, "bad_request"},
		{"application/json", `{"type":"demo","input":{"steps":1},"delay":"soon"}`, 400, "bad_request"},
		{"application/json", `{}`, 400, "bad_request"},
		{"application/json", `{"type":"demo"} {}`, 400, "bad_request"},
		{"text/plain", demo, 415, "unsupported_media_type"},
		{"application/json", `{"type":"demo","input":"` + strings.Repeat("x", 1<<20) + `"}`, 413, "too_large"},
		{"application/json", `{"type":"no-such-type"}`, 422, "unknown_type"},
		{"application/json", `{"type":"demo","input":{"steps":0}}`, 422, "invalid_input"},
		// Nested deeper than MAX_JSON_DEPTH (32 here).
		{"application/json", `{"type":"demo","input":` + strings.Repeat("[", 33) + strings.Repeat("]", 33) + `}`, 400, "bad_request"},
	} {
		expect(jobsPath, "POST", jobsPath, c.ct, c.body, nil, c.status, c.code)
	}

	// Reading jobs.
	expect(jobPath, "GET", "/api/jobs/a.b", "", "", nil, 400, "invalid_id")
	expect(jobPath, "GET", "/api/jobs/"+jobs.NewID(time.Now()), "", "", nil, 404, "not_found")
	waitUntil(t, 10*time.Second, "two jobs listed (the index is a few milliseconds behind)", func() bool {
		var page struct{ Jobs []jobs.Snapshot }
		sys.Do(t, "GET", jobsPath+"?type=demo", "", "", nil, &page)
		return len(page.Jobs) >= 2
	})
	expect(jobsPath, "GET", jobsPath, "", "", nil, 200, "")
	expect("/api/stats", "GET", "/api/stats", "", "", nil, 200, "")
	_, b = expect(jobsPath, "GET", jobsPath+"?limit=1&type=demo", "", "", nil, 200, "")
	var page struct {
		Jobs       []jobs.Snapshot `json:"jobs"`
		NextCursor string          `json:"next_cursor"`
	}
	if err := json.Unmarshal(b, &page); err != nil || len(page.Jobs) != 1 || page.NextCursor == "" {
		t.Fatalf("first page of one: %s (%v)", b, err)
	}
	expect(jobsPath, "GET", jobsPath+"?limit=1&type=demo&cursor="+page.NextCursor, "", "", nil, 200, "")
	for _, q := range []string{"limit=0", "limit=501", "limit=x", "status=exploded", "type=a.b", "cursor=a.b"} {
		expect(jobsPath, "GET", jobsPath+"?"+q, "", "", nil, 400, "bad_request")
	}
	expect("/api/job-types", "GET", "/api/job-types", "", "", nil, 200, "")

	// Cancel.
	_, b = expect(jobsPath, "POST", jobsPath, "application/json", `{"type":"demo","input":{"steps":10000,"step_ms":10}}`, nil, 202, "")
	long := snapshotOf(b)
	sys.WaitStatus(t, long.ID, jobs.StatusRunning, 20*time.Second)
	expect(cancelPath, "POST", "/api/jobs/"+long.ID+"/cancel", "", "", nil, 202, "")
	sys.WaitStatus(t, long.ID, jobs.StatusCanceled, 20*time.Second)
	expect(jobPath, "GET", "/api/jobs/"+long.ID, "", "", nil, 200, "")
	expect(cancelPath, "POST", "/api/jobs/"+long.ID+"/cancel", "application/json", `{"reason":"twice is harmless"}`, nil, 202, "")
	_, b = expect(cancelPath, "POST", "/api/jobs/"+ok.ID+"/cancel", "", "", nil, 409, "already_finished")
	var conflict struct {
		Job *jobs.Snapshot `json:"job"`
	}
	if err := json.Unmarshal(b, &conflict); err != nil || conflict.Job == nil || conflict.Job.Status != jobs.StatusSucceeded {
		t.Errorf("409 without the final snapshot: %s", b)
	}
	expect(cancelPath, "POST", "/api/jobs/"+jobs.NewID(time.Now())+"/cancel", "", "", nil, 404, "not_found")
	expect(cancelPath, "POST", "/api/jobs/a.b/cancel", "", "", nil, 400, "invalid_id")
	expect(cancelPath, "POST", "/api/jobs/"+long.ID+"/cancel", "text/plain", "why", nil, 415, "unsupported_media_type")

	// Retry: of a failed and a canceled job (the second time: the same
	// job), then the retried job shows retried_as; refused for others.
	const retryPath = "/api/jobs/{id}/retry"
	_, b = expect(retryPath, "POST", "/api/jobs/"+bad.ID+"/retry", "", "", nil, 202, "")
	again := snapshotOf(b)
	if resp, b := expect(retryPath, "POST", "/api/jobs/"+bad.ID+"/retry", "", "", nil, 202, ""); snapshotOf(b).ID != again.ID || resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("second retry: %s", b)
	}
	expect(retryPath, "POST", "/api/jobs/"+long.ID+"/retry", "", "", nil, 202, "")
	if _, b := expect(jobPath, "GET", "/api/jobs/"+bad.ID, "", "", nil, 200, ""); snapshotOf(b).RetriedAs != again.ID {
		t.Errorf("retried job: %s", b)
	}
	expect(jobPath, "GET", "/api/jobs/"+again.ID, "", "", nil, 200, "")
	expect(retryPath, "POST", "/api/jobs/"+ok.ID+"/retry", "", "", nil, 409, "not_retryable")
	expect(retryPath, "POST", "/api/jobs/"+jobs.NewID(time.Now())+"/retry", "", "", nil, 404, "not_found")
	expect(retryPath, "POST", "/api/jobs/a.b/retry", "", "", nil, 400, "invalid_id")
	expect(cancelPath, "POST", "/api/jobs/"+long.ID+"/cancel", "application/json", `{"why":1}`, nil, 400, "bad_request")
	expect(cancelPath, "POST", "/api/jobs/"+long.ID+"/cancel", "application/json", `{"reason":"`+strings.Repeat("r", 501)+`"}`, nil, 400, "bad_request")

	// Probes, the document itself, an unknown endpoint, /ws without an upgrade.
	expect("/healthz", "GET", "/healthz", "", "", nil, 200, "")
	expect("/readyz", "GET", "/readyz", "", "", nil, 200, "")
	resp, b = expect("/api/openapi.json", "GET", "/api/openapi.json", "", "", nil, 200, "")
	if !bytes.Equal(b, schema.Bytes(schema.OpenAPI)) || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("GET /api/openapi.json: %s, %d bytes, not the embedded document", resp.Header.Get("Content-Type"), len(b))
	}
	resp, b = call(t, sys, "GET", "/api/no-such-endpoint", "", "", nil)
	if resp.StatusCode != 404 || errorCode(resp, b) != "not_found" {
		t.Errorf("unknown endpoint: %d %s", resp.StatusCode, b)
	}
	k.check("openapi.json#/components/schemas/ErrorResponse", b, "unknown endpoint")
	resp, b = call(t, sys, "GET", "/ws", "", "", nil)
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Errorf("GET /ws without an upgrade: %d %s", resp.StatusCode, b)
	}
	k.checkResponse("/ws", "GET", resp, b)

	// Not ready (as while shutting down): 503 with Retry-After.
	sys.GW.SetReady(false)
	resp, _ = expect("/readyz", "GET", "/readyz", "", "", nil, 503, "shutting_down")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	sys.GW.SetReady(true)
}

// checkSSE checks a Server-Sent Events body of job id: every message is
// an event of the job with its seq as id (or the truncated marker). It
// returns the seqs in order.
func (k *contract) checkSSE(body []byte, id string) []uint64 {
	k.t.Helper()
	text := string(body)
	if !strings.HasSuffix(text, "\n\n") {
		k.t.Errorf("event stream does not end with a whole message: %q", text)
	}
	var seqs []uint64
	for _, block := range strings.Split(strings.TrimSuffix(text, "\n\n"), "\n\n") {
		fields := map[string]string{}
		for _, line := range strings.Split(block, "\n") {
			name, value, ok := strings.Cut(line, ": ")
			if !ok {
				k.t.Errorf("event stream line %q", line)
			}
			fields[name] = value
		}
		if fields["event"] == "truncated" {
			if fields["data"] != "{}" || len(fields) != 2 {
				k.t.Errorf("truncated marker %q", block)
			}
			continue
		}
		k.check(schema.Event, []byte(fields["data"]), "SSE data of job "+id)
		var ev jobs.Event
		if err := json.Unmarshal([]byte(fields["data"]), &ev); err != nil {
			k.t.Fatal(err)
		}
		if ev.JobID != id || fields["id"] != strconv.FormatUint(ev.Seq, 10) || len(fields) != 2 {
			k.t.Errorf("SSE message %q of job %s", block, id)
		}
		seqs = append(seqs, ev.Seq)
	}
	return seqs
}

// wsFrame is what the tests read of a server message.
type wsFrame struct {
	Op        string          `json:"op"`
	JobID     string          `json:"job_id"`
	Truncated bool            `json:"truncated"`
	Event     json.RawMessage `json:"event"`
	Code      string          `json:"code"`
	raw       []byte
	ev        jobs.Event
}

// contractWS is a WebSocket client whose every message, both ways, is
// checked against ws-client.schema.json and ws-server.schema.json.
type contractWS struct {
	*wsClient
	k *contract
}

// send sends msg; valid says whether the client schema must accept it.
func (w *contractWS) send(msg string, valid bool) {
	w.t.Helper()
	err := w.k.validate(schema.WSClient, []byte(msg))
	if valid && err != nil {
		w.t.Errorf("client message %s does not satisfy %s: %v", msg, schema.WSClient, err)
	}
	if !valid && err == nil {
		w.t.Errorf("client message %s satisfies %s, but the server refuses it", msg, schema.WSClient)
	}
	w.wsClient.send(msg)
}

func (w *contractWS) read() wsFrame {
	w.t.Helper()
	typ, b, err := w.next()
	if err != nil {
		w.t.Fatal(err)
	}
	if typ != websocket.MessageText {
		w.t.Errorf("server message of type %v", typ)
	}
	w.k.check(schema.WSServer, b, "server message")
	f := wsFrame{raw: b}
	if err := json.Unmarshal(b, &f); err != nil {
		w.t.Fatalf("%s: %v", b, err)
	}
	if f.Op == "event" {
		if err := json.Unmarshal(f.Event, &f.ev); err != nil {
			w.t.Fatalf("%s: %v", b, err)
		}
		if f.ev.JobID != f.JobID {
			w.t.Errorf("message for job %s carries an event of job %s", f.JobID, f.ev.JobID)
		}
	}
	return f
}

// events reads the events of job id until its final one.
func (w *contractWS) events(id string) []jobs.Event {
	w.t.Helper()
	var evs []jobs.Event
	for {
		f := w.read()
		if f.Op != "event" || f.JobID != id {
			w.t.Fatalf("want events of %s, got %s", id, f.raw)
		}
		if n := len(evs); n > 0 && f.ev.Seq <= evs[n-1].Seq {
			w.t.Fatalf("seq %d after %d", f.ev.Seq, evs[n-1].Seq)
		}
		evs = append(evs, f.ev)
		if f.ev.Status.Terminal() {
			return evs
		}
	}
}

func TestContractWebSocketMessages(t *testing.T) {
	t.Parallel()
	// An admin, so that the feed of every job is allowed too.
	sys := testsys.Start(t).As(testsys.Token(t, "ops", true, time.Hour))
	ws := &contractWS{dialWS(t, sys), newContract(t)}

	// Live, from the current state to the end.
	snap := sys.Submit(t, "demo", `{"steps":5,"step_ms":20}`)
	ws.send(`{"op":"watch","job_id":"`+snap.ID+`"}`, true)
	live := ws.events(snap.ID)
	if live[len(live)-1].Kind != jobs.KindSucceeded {
		t.Fatalf("last event %+v", live[len(live)-1])
	}
	// The whole history again, replayed.
	ws.send(`{"op":"unwatch","job_id":"`+snap.ID+`"}`, true)
	ws.send(`{"op":"watch","job_id":"`+snap.ID+`","after_seq":0}`, true)
	replayed := ws.events(snap.ID)
	if replayed[0].Seq != 1 {
		t.Errorf("replay from after_seq 0 starts at seq %d", replayed[0].Seq)
	}

	// Errors, each answering one client message.
	for _, c := range []struct {
		msg   string
		valid bool // for the client schema
		code  string
	}{
		{`{"op":"watch","job_id":"a.b"}`, false, "invalid_id"},
		{`{"op":"watch","job_id":"*"}`, false, "invalid_id"},
		{`{"op":"watch","job_id":"` + jobs.NewID(time.Now()) + `"}`, true, "not_found"},
		{`{"op":"explode","job_id":"x"}`, false, "bad_request"},
		{`{"op":"watch","job_id":"` + strings.Repeat("x", 300) + `"}`, false, "invalid_id"},
	} {
		ws.send(c.msg, c.valid)
		if f := ws.read(); f.Op != "error" || f.Code != c.code {
			t.Errorf("%s: got %s, want error %s", c.msg, f.raw, c.code)
		}
	}
	ws.wsClient.send("not JSON") // not a client message at all
	if f := ws.read(); f.Op != "error" || f.Code != "bad_request" || f.JobID != "" {
		t.Errorf("not JSON: got %s", f.raw)
	}

	// The feed of every job: live events of a job submitted after it
	// started, from its first to its final one.
	subs := sys.GW.Live().Stats().Subscriptions
	ws.send(`{"op":"watch_all"}`, true)
	for deadline := time.Now().Add(10 * time.Second); sys.GW.Live().Stats().Subscriptions == subs; {
		if time.Now().After(deadline) {
			t.Fatal("watch_all did not subscribe")
		}
		time.Sleep(5 * time.Millisecond)
	}
	fed := sys.Submit(t, "demo", `{"steps":3,"step_ms":5}`)
	evs := ws.events(fed.ID)
	if evs[0].Seq != 1 || evs[len(evs)-1].Kind != jobs.KindSucceeded {
		t.Errorf("feed of job %s: %v", fed.ID, testsys.Kinds(evs))
	}
	ws.send(`{"op":"unwatch_all"}`, true)
	for deadline := time.Now().Add(10 * time.Second); sys.GW.Live().Stats().Subscriptions != subs; {
		if time.Now().After(deadline) {
			t.Fatal("unwatch_all did not unsubscribe")
		}
		time.Sleep(5 * time.Millisecond)
	}

	// The feed of the caller's own jobs, the same way.
	ws.send(`{"op":"watch_mine"}`, true)
	for deadline := time.Now().Add(10 * time.Second); sys.GW.Live().Stats().Subscriptions == subs; {
		if time.Now().After(deadline) {
			t.Fatal("watch_mine did not subscribe")
		}
		time.Sleep(5 * time.Millisecond)
	}
	mine := sys.Submit(t, "demo", `{"steps":3,"step_ms":5}`)
	evs = ws.events(mine.ID)
	if evs[0].Seq != 1 || evs[len(evs)-1].Kind != jobs.KindSucceeded {
		t.Errorf("own feed of job %s: %v", mine.ID, testsys.Kinds(evs))
	}
	ws.send(`{"op":"unwatch_mine"}`, true)
}

// A watcher resuming from history that aged out gets the current state
// marked truncated.
func TestContractWebSocketTruncated(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner(), testsys.WithConfig(func(c *httpapi.Config) { c.EventsMaxPerJob = 1 }))
	ws := &contractWS{dialWS(t, sys), newContract(t)}
	snap := sys.Submit(t, "demo", `{"steps":1,"step_ms":0}`)
	// A runner started it and vanished; then it is canceled. Only the last
	// event after the job's request is kept (the request stays).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	queued, qseq, err := jobs.LastEvent(ctx, sys.Streams.Events, snap.ID)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(sys.NC)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	started := queued.Next(jobs.KindStarted, now)
	started.Status, started.Attempt, started.StartedAt = jobs.StatusRunning, 1, &now
	if _, err := jobs.PublishEvent(ctx, js, started, qseq); err != nil {
		t.Fatal(err)
	}
	if code, _ := sys.Cancel(t, snap.ID, ""); code != http.StatusAccepted {
		t.Fatalf("cancel: %d", code)
	}
	ws.send(`{"op":"watch","job_id":"`+snap.ID+`","after_seq":1}`, true)
	f := ws.read()
	if f.Op != "event" || !f.Truncated || f.ev.Seq != 3 || f.ev.Kind != jobs.KindCanceled {
		t.Fatalf("got %s, want the canceled state (seq 3) marked truncated", f.raw)
	}
	// The same over Server-Sent Events.
	resp, b := call(t, sys, "GET", "/api/jobs/"+snap.ID+"/events?after_seq=1", "", "", nil)
	ws.k.checkResponse("/api/jobs/{id}/events", "GET", resp, b)
	if !strings.HasPrefix(string(b), "event: truncated\ndata: {}\n\n") {
		t.Errorf("SSE after aged-out history: %q, want the truncated marker first", b)
	}
	if seqs := ws.k.checkSSE(b, snap.ID); !slices.Equal(seqs, []uint64{3}) {
		t.Errorf("SSE after aged-out history: seqs %v, want [3]", seqs)
	}
}

// Every route of the API in the router is documented in openapi.json with
// the same method, and every documented operation is routed.
func TestContractRoutesAreDocumented(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner())
	k := newContract(t)
	routes, ok := sys.GW.Handler().(chi.Routes)
	if !ok {
		t.Fatalf("the handler is a %T, not a chi router", sys.GW.Handler())
	}
	api := func(route string) bool {
		return strings.HasPrefix(route, "/api/") || route == "/healthz" || route == "/readyz" || route == "/ws"
	}
	routed := map[string]bool{}
	err := chi.Walk(routes, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if api(route) {
			routed[method+" "+route] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for path, item := range k.lookup("#/paths") {
		for method := range item.(map[string]any) {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options", "trace":
				documented[strings.ToUpper(method)+" "+path] = true
			}
		}
		if !api(path) {
			t.Errorf("openapi.json documents %s, which is not part of the API", path)
		}
	}
	if len(routed) < 5 {
		t.Fatalf("walked only %v", routed)
	}
	for r := range routed {
		if !documented[r] {
			t.Errorf("route %s is not in openapi.json", r)
		}
	}
	for d := range documented {
		if !routed[d] {
			t.Errorf("openapi.json documents %s, which is not routed", d)
		}
	}
}

// A job that ended and whose events aged out answers 410 expired on every
// route that reads it, and over the WebSocket.
func TestContractExpiredJob(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner(), testsys.WithConfig(func(c *httpapi.Config) { c.EventsMaxAge = 2 * time.Second }))
	ws := &contractWS{dialWS(t, sys), newContract(t)}
	k := ws.k
	snap := sys.Submit(t, "demo", `{"steps":1,"step_ms":0}`)
	if code, _ := sys.Cancel(t, snap.ID, ""); code != http.StatusAccepted {
		t.Fatalf("cancel: %d", code)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, b := call(t, sys, "GET", "/api/jobs/"+snap.ID, "", "", nil)
		if resp.StatusCode == http.StatusGone {
			k.checkResponse("/api/jobs/{id}", "GET", resp, b)
			break
		}
		if resp.StatusCode != http.StatusOK || time.Now().After(deadline) {
			t.Fatalf("GET an aged-out job: %d %s, want 410", resp.StatusCode, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range []struct{ template, method, path string }{
		{"/api/jobs/{id}/events", "GET", "/api/jobs/" + snap.ID + "/events"},
		{"/api/jobs/{id}/cancel", "POST", "/api/jobs/" + snap.ID + "/cancel"},
	} {
		resp, b := call(t, sys, c.method, c.path, "", "", nil)
		if resp.StatusCode != http.StatusGone || errorCode(resp, b) != "expired" {
			t.Errorf("%s %s: %d %s, want 410 expired", c.method, c.path, resp.StatusCode, b)
		}
		k.checkResponse(c.template, c.method, resp, b)
	}
	ws.send(`{"op":"watch","job_id":"`+snap.ID+`"}`, true)
	if f := ws.read(); f.Op != "error" || f.Code != "expired" {
		t.Errorf("watching an aged-out job: %s", f.raw)
	}
}

// operation is one operation of openapi.json.
type operation struct {
	path, method string // the path template and the method, e.g. "/api/jobs/{id}", "GET"
	op           map[string]any
}

// url is the operation's path with id for {id}.
func (o operation) url(id string) string { return strings.ReplaceAll(o.path, "{id}", id) }

// operations lists every operation of openapi.json, by path and method.
func (k *contract) operations() []operation {
	k.t.Helper()
	var out []operation
	for path, item := range k.lookup("#/paths") {
		for method, v := range item.(map[string]any) {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options", "trace":
				out = append(out, operation{path, strings.ToUpper(method), v.(map[string]any)})
			}
		}
	}
	slices.SortFunc(out, func(a, b operation) int { return strings.Compare(a.path+" "+a.method, b.path+" "+b.method) })
	if len(out) < 5 {
		k.t.Fatalf("openapi.json has only %d operations", len(out))
	}
	return out
}

// public reports whether the document lets o be called without
// credentials: its security (or else the document's) is empty or has an
// empty requirement.
func (k *contract) public(o operation) bool {
	sec, ok := o.op["security"]
	if !ok {
		sec = k.openapi["security"]
	}
	reqs, _ := sec.([]any)
	for _, r := range reqs {
		if m, _ := r.(map[string]any); len(m) == 0 {
			return true
		}
	}
	return len(reqs) == 0
}

// dialRefused opens a WebSocket on /ws as sys's caller (plus header) that
// the gateway must refuse, and returns the refusal with its body.
func dialRefused(t testing.TB, sys *testsys.System, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := http.Header{}
	for k, v := range sys.Header() {
		h.Set(k, v)
	}
	for k, v := range header {
		h.Set(k, v)
	}
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(sys.URL, "http")+"/ws", &websocket.DialOptions{HTTPClient: sys.HTTPClient(), HTTPHeader: h})
	if err == nil {
		_ = c.CloseNow()
		t.Fatal("the WebSocket was opened, want a refusal")
	}
	if resp == nil {
		t.Fatalf("WebSocket dial: %v", err)
	}
	b, err := io.ReadAll(resp.Body) // the first KiB, kept by the client
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// The security of every operation in openapi.json is what the gateway
// does. With anonymous sessions off, an operation documented as public
// answers without credentials (and ignores a bad token); every other one
// refuses a request without credentials, with a bad or non-bearer
// Authorization header or with a forged session cookie with 401
// unauthenticated and WWW-Authenticate, and accepts a valid bearer token.
// Every answer, and the refusal a real WebSocket client gets, is checked
// against the document.
func TestContractSecurity(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner(), testsys.WithConfig(func(c *httpapi.Config) { c.AnonymousSessions = false }))
	k := newContract(t)

	schemes := k.lookup("#/components/securitySchemes")
	bearer, _ := schemes["bearerAuth"].(map[string]any)
	cookie, _ := schemes["sessionCookie"].(map[string]any)
	if bearer["type"] != "http" || bearer["scheme"] != "bearer" || bearer["bearerFormat"] != "JWT" {
		t.Errorf("bearerAuth: %v", bearer)
	}
	if cookie["type"] != "apiKey" || cookie["in"] != "cookie" || cookie["name"] != httpapi.SessionCookie {
		t.Errorf("sessionCookie: %v", cookie)
	}
	top, _ := k.openapi["security"].([]any)
	requirements := [][]any{top}
	for _, o := range k.operations() {
		if sec, ok := o.op["security"].([]any); ok {
			requirements = append(requirements, sec)
		}
	}
	for _, reqs := range requirements {
		for _, r := range reqs {
			for name := range r.(map[string]any) {
				if _, ok := schemes[name]; !ok {
					t.Errorf("a security requirement names %s, which is not a security scheme", name)
				}
			}
		}
	}
	if len(top) != 2 {
		t.Errorf("top-level security %v, want bearerAuth or sessionCookie", top)
	}

	id := jobs.NewID(time.Now())
	valid := testsys.Token(t, "contract", false, time.Hour)
	credentials := []struct {
		name    string
		header  map[string]string
		refused bool
	}{
		{"no credentials", nil, true},
		{"a bad bearer token", map[string]string{"Authorization": "Bearer not-a-token"}, true},
		{"an expired bearer token", map[string]string{"Authorization": "Bearer " + testsys.Token(t, "contract", false, -time.Hour)}, true},
		{"basic credentials", map[string]string{"Authorization": "Basic YWxpY2U6cHc="}, true},
		{"a forged session cookie", map[string]string{"Cookie": httpapi.SessionCookie + "=" + strings.Repeat("A", 22) + ".forged"}, true},
		{"a valid bearer token", map[string]string{"Authorization": "Bearer " + valid}, false},
	}
	var public, secured int
	for _, o := range k.operations() {
		if k.public(o) {
			public++
		} else {
			secured++
		}
		for _, c := range credentials {
			resp, b := call(t, sys, o.method, o.url(id), "", "", c.header)
			k.checkResponse(o.path, o.method, resp, b)
			got := resp.StatusCode == http.StatusUnauthorized
			switch {
			case k.public(o) && got:
				t.Errorf("%s %s is documented as public, but with %s answers %d %s", o.method, o.path, c.name, resp.StatusCode, b)
			case !k.public(o) && c.refused && (!got || errorCode(resp, b) != "unauthenticated" || resp.Header.Get("WWW-Authenticate") == ""):
				t.Errorf("%s %s with %s: %d %s (WWW-Authenticate %q), want 401 unauthenticated", o.method, o.path, c.name, resp.StatusCode, b, resp.Header.Get("WWW-Authenticate"))
			case !k.public(o) && !c.refused && got:
				t.Errorf("%s %s with %s: %d %s", o.method, o.path, c.name, resp.StatusCode, b)
			}
		}
	}
	if public < 4 || secured < 6 {
		t.Errorf("%d public and %d secured operations, want at least 4 and 6", public, secured)
	}

	// A real WebSocket client with a bad token is refused before the upgrade.
	resp, b := dialRefused(t, sys, map[string]string{"Authorization": "Bearer not-a-token"})
	if resp.StatusCode != http.StatusUnauthorized || errorCode(resp, b) != "unauthenticated" {
		t.Errorf("WebSocket with a bad token: %d %s", resp.StatusCode, b)
	}
	k.checkResponse("/ws", "GET", resp, b)

	// A caller who is not an admin may not watch every job.
	ws := &contractWS{dialWS(t, sys.As(valid)), k}
	ws.send(`{"op":"watch_all"}`, true)
	if f := ws.read(); f.Op != "error" || f.Code != "forbidden" || f.JobID != "" {
		t.Errorf("watch_all of a caller who is not an admin: %s", f.raw)
	}
}

// A browser's cross-site request that would change state (every POST and
// DELETE operation) is refused with 403 cross_origin; the other operations are not
// affected. Nothing is stored.
func TestContractCrossOrigin(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner())
	k := newContract(t)
	id := jobs.NewID(time.Now())
	posts := 0
	for _, o := range k.operations() {
		for _, h := range []map[string]string{
			{"Sec-Fetch-Site": "cross-site"},
			{"Sec-Fetch-Site": "same-site"},
			{"Origin": "http://evil.example"},
		} {
			resp, b := call(t, sys, o.method, o.url(id), "application/json", `{}`, h)
			k.checkResponse(o.path, o.method, resp, b)
			refused := resp.StatusCode == http.StatusForbidden && errorCode(resp, b) == "cross_origin"
			changes := o.method == http.MethodPost || o.method == http.MethodDelete
			if changes && !refused {
				t.Errorf("%s %s with %v: %d %s, want 403 cross_origin", o.method, o.path, h, resp.StatusCode, b)
			}
			if !changes && refused {
				t.Errorf("%s %s with %v is refused as cross-origin", o.method, o.path, h)
			}
		}
		if o.method == http.MethodPost {
			posts++
		}
	}
	if posts < 2 {
		t.Fatalf("only %d POST operations", posts)
	}
	if q, e := sys.StreamCounts(t); q != 0 || e != 0 {
		t.Errorf("refused requests stored %d requests, %d events", q, e)
	}
}

// SUBMIT_RATE and MAX_CONNS_PER_OWNER: the 429s of submit, of the event
// stream and of the WebSocket, as documented.
func TestContractLimits(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner(), testsys.WithConfig(func(c *httpapi.Config) { c.SubmitRate, c.MaxConnsPerOwner = 1, 1 }))
	k := newContract(t)
	const jobsPath, eventsPath = "/api/jobs", "/api/jobs/{id}/events"
	const demo = `{"type":"demo","input":{"steps":1}}`

	// One submission a minute: the first is accepted, the second refused.
	resp, b := call(t, sys, "POST", jobsPath, "application/json", demo, nil)
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("X-RateLimit-Limit") != "1" || resp.Header.Get("X-RateLimit-Remaining") != "0" {
		t.Fatalf("first submission: %d %s, X-RateLimit-* %q %q", resp.StatusCode, b, resp.Header.Get("X-RateLimit-Limit"), resp.Header.Get("X-RateLimit-Remaining"))
	}
	k.checkResponse(jobsPath, "POST", resp, b)
	var snap jobs.Snapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		t.Fatal(err)
	}
	resp, b = call(t, sys, "POST", jobsPath, "application/json", demo, nil)
	if resp.StatusCode != http.StatusTooManyRequests || errorCode(resp, b) != "rate_limited" {
		t.Fatalf("second submission: %d %s, want 429 rate_limited", resp.StatusCode, b)
	}
	k.checkResponse(jobsPath, "POST", resp, b)

	// One connection: while one is open, another event stream, a plain
	// GET /ws and a real WebSocket client are all refused.
	events := "/api/jobs/" + snap.ID + "/events"
	refused := func(holding string) {
		t.Helper()
		for _, c := range []struct {
			template string
			answer   func() (*http.Response, []byte)
		}{
			{eventsPath, func() (*http.Response, []byte) { return call(t, sys, "GET", events, "", "", nil) }},
			{"/ws", func() (*http.Response, []byte) { return call(t, sys, "GET", "/ws", "", "", nil) }},
			{"/ws", func() (*http.Response, []byte) { return dialRefused(t, sys, nil) }},
		} {
			resp, b := c.answer()
			if resp.StatusCode != http.StatusTooManyRequests || errorCode(resp, b) != "too_many_connections" {
				t.Errorf("GET %s while %s is open: %d %s, want 429 too_many_connections", c.template, holding, resp.StatusCode, b)
			}
			k.checkResponse(c.template, "GET", resp, b)
		}
	}

	// An event stream of the queued job (no runner: it stays open).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", sys.URL+events, nil)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := sys.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if mt, _, _ := mime.ParseMediaType(stream.Header.Get("Content-Type")); stream.StatusCode != http.StatusOK || mt != "text/event-stream" {
		t.Fatalf("event stream: %d %s", stream.StatusCode, stream.Header.Get("Content-Type"))
	}
	refused("an event stream")
	cancel()
	_ = stream.Body.Close()

	// Once the stream is gone its connection is free again: a plain GET /ws
	// gets as far as the missing upgrade.
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, b := call(t, sys, "GET", "/ws", "", "", nil)
		if resp.StatusCode == http.StatusUpgradeRequired {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /ws after the stream closed: %d %s", resp.StatusCode, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	dialWS(t, sys)
	refused("a WebSocket")
}

// Every path of openapi.json answers a method it does not list with 405
// method_not_allowed, as components/responses/MethodNotAllowed documents.
func TestContractMethodNotAllowed(t *testing.T) {
	t.Parallel()
	sys := testsys.Start(t, testsys.WithoutRunner())
	k := newContract(t)
	id := jobs.NewID(time.Now())
	listed := map[string]map[string]bool{}
	for _, o := range k.operations() {
		if listed[o.path] == nil {
			listed[o.path] = map[string]bool{}
		}
		listed[o.path][o.method] = true
	}
	n := 0
	for path, methods := range listed {
		for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
			if methods[m] {
				continue
			}
			n++
			url := strings.ReplaceAll(path, "{id}", id)
			resp, b := call(t, sys, m, url, "", "", nil)
			if resp.StatusCode != http.StatusMethodNotAllowed || (m != "HEAD" && errorCode(resp, b) != "method_not_allowed") {
				t.Errorf("%s %s: %d %s, want 405 method_not_allowed", m, url, resp.StatusCode, b)
				continue
			}
			k.checkAnswer(fmt.Sprintf("%s %s -> 405", m, url), "#/components/responses/MethodNotAllowed", resp, b)
			var want []string
			for _, lm := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
				if methods[lm] {
					want = append(want, lm)
				}
			}
			if got := resp.Header.Get("Allow"); got != strings.Join(want, ", ") {
				t.Errorf("%s %s: Allow %q, want %q", m, url, got, strings.Join(want, ", "))
			}
		}
	}
	if n < 20 {
		t.Fatalf("tried only %d methods", n)
	}
}
