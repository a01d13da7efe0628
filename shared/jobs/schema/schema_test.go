package schema_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/jobwire/jobwire/shared/jobs/schema"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// allDocs are every document the package promises.
var allDocs = append(schema.Schemas(), schema.AsyncAPI, schema.OpenAPI)

func TestEveryDocumentIsEmbeddedJSON(t *testing.T) {
	t.Parallel()
	var embedded []string
	err := fs.WalkDir(schema.FS(), ".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			embedded = append(embedded, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(embedded)
	want := slices.Sorted(slices.Values(allDocs))
	if !slices.Equal(embedded, want) {
		t.Fatalf("embedded files %q, want exactly %q", embedded, want)
	}
	for _, name := range allDocs {
		b := schema.Bytes(name)
		if err := checkJSON(b); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		// Bytes hands out copies: a caller cannot change the contract.
		b[0] = 'X'
		if schema.Bytes(name)[0] == 'X' {
			t.Errorf("Bytes(%q) returns the embedded slice itself", name)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Bytes of an unknown document did not panic")
		}
	}()
	schema.Bytes("nope.json")
}

// checkJSON reports whether b is valid JSON with no duplicate keys in any
// object (encoding/json would silently keep the last of two).
func checkJSON(b []byte) error {
	if !json.Valid(b) {
		return errors.New("not valid JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	type frame struct {
		keys    map[string]bool // nil in an array
		wantKey bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if n := len(stack); n > 0 && stack[n-1].keys != nil && stack[n-1].wantKey {
			if key, ok := tok.(string); ok {
				if stack[n-1].keys[key] {
					return fmt.Errorf("duplicate key %q at depth %d", key, n)
				}
				stack[n-1].keys[key], stack[n-1].wantKey = true, false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: map[string]bool{}, wantKey: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value ended: an object expects its next key.
		if n := len(stack); n > 0 && stack[n-1].keys != nil {
			stack[n-1].wantKey = true
		}
	}
}

func TestCheckJSONFindsDuplicateKeys(t *testing.T) {
	t.Parallel()
	for _, s := range []string{`{"a":1,"a":2}`, `{"x":{"b":[1,{"c":1,"c":1}]}}`, `{"a":{"b":1},"c":[],"a":0}`} {
		if checkJSON([]byte(s)) == nil {
			t.Errorf("checkJSON(%s) found no duplicate", s)
		}
	}
	for _, s := range []string{`{"a":{"a":1},"b":[{"a":1},{"a":2}]}`, `[]`, `{"a":[{"b":1}],"b":{}}`} {
		if err := checkJSON([]byte(s)); err != nil {
			t.Errorf("checkJSON(%s): %v", s, err)
		}
	}
}

func TestSchemasCompile(t *testing.T) {
	t.Parallel()
	for _, name := range schema.Schemas() {
		doc := load(t, name)
		if got := doc["$schema"]; got != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: $schema = %v, want draft 2020-12", name, got)
		}
		if got := doc["$id"]; got != schema.BaseURI+name {
			t.Errorf("%s: $id = %v, want %s", name, got, schema.BaseURI+name)
		}
		if _, err := schema.Compile(name); err != nil {
			t.Errorf("%s does not compile: %v", name, err)
		}
	}
	// Every schema component of the OpenAPI document (JSON Schema 2020-12)
	// and of the AsyncAPI document (AsyncAPI schemas: a superset of JSON
	// Schema draft-07) compiles too.
	for name := range components(t, schema.OpenAPI) {
		if _, err := schema.Compile(schema.OpenAPI + "#/components/schemas/" + name); err != nil {
			t.Errorf("openapi.json component %s does not compile: %v", name, err)
		}
	}
	for name := range components(t, schema.AsyncAPI) {
		if _, err := compileDraft7(t, schema.AsyncAPI+"#/components/schemas/"+name); err != nil {
			t.Errorf("asyncapi.json component %s does not compile as draft-07: %v", name, err)
		}
	}
}

// goldenSchemas says which document each golden file of shared/jobs must
// satisfy; a golden file missing here fails the test.
var goldenSchemas = map[string]string{
	"event_queued.json":          schema.Event,
	"event_started.json":         schema.Event,
	"event_progress.json":        schema.Event,
	"event_log.json":             schema.Event,
	"event_retrying.json":        schema.Event,
	"event_succeeded.json":       schema.Event,
	"event_failed.json":          schema.Event,
	"event_canceled.json":        schema.Event,
	"event_queued_retry.json":    schema.Event,
	"request.json":               schema.Request,
	"request_retry.json":         schema.Request,
	"snapshot_retried.json":      schema.Snapshot,
	"cancel_request.json":        schema.AsyncAPI + "#/components/schemas/CancelRequest",
	"cancel_reply.json":          schema.AsyncAPI + "#/components/schemas/CancelReply",
	"cancel_reply_rejected.json": schema.AsyncAPI + "#/components/schemas/CancelReply",
	"typeinfo.json":              schema.OpenAPI + "#/components/schemas/TypeInfo",
}

const goldenDir = "../testdata/golden"

func TestGoldenFilesValidate(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files in %s: %v", goldenDir, err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		ref, ok := goldenSchemas[name]
		if !ok {
			t.Errorf("golden file %s has no schema in goldenSchemas", name)
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate(t, ref, b); err != nil {
			t.Errorf("%s does not satisfy %s:\n%v", name, ref, err)
		}
	}
	// The same events also satisfy the mirrored components.
	for _, ref := range []string{
		schema.OpenAPI + "#/components/schemas/Event",
		schema.AsyncAPI + "#/components/schemas/Event",
	} {
		for _, f := range files {
			if name := filepath.Base(f); goldenSchemas[name] == schema.Event {
				b, _ := os.ReadFile(f)
				if err := validate(t, ref, b); err != nil {
					t.Errorf("%s does not satisfy %s:\n%v", name, ref, err)
				}
			}
		}
	}
}

// edit returns the JSON of the golden file name changed by f.
func edit(t *testing.T, name string, f func(m map[string]any)) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(goldenDir, name))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWrongMessagesAreRejected(t *testing.T) {
	t.Parallel()
	type wrong struct {
		name   string
		ref    string
		golden string
		change func(m map[string]any)
	}
	cases := []wrong{
		{"event without seq", schema.Event, "event_progress.json", func(m map[string]any) { delete(m, "seq") }},
		{"event with seq 0", schema.Event, "event_progress.json", func(m map[string]any) { m["seq"] = 0 }},
		{"event of kind exploded", schema.Event, "event_progress.json", func(m map[string]any) { m["kind"] = "exploded" }},
		{"event of status exploded", schema.Event, "event_progress.json", func(m map[string]any) { m["status"] = "exploded" }},
		{"event at 150 percent", schema.Event, "event_progress.json", func(m map[string]any) { m["percent"] = 150 }},
		{"event at -1 percent", schema.Event, "event_progress.json", func(m map[string]any) { m["percent"] = -1 }},
		{"event with an unknown field", schema.Event, "event_progress.json", func(m map[string]any) { m["colour"] = "red" }},
		{"event of job a.b", schema.Event, "event_progress.json", func(m map[string]any) { m["job_id"] = "a.b" }},
		{"event of job *", schema.Event, "event_progress.json", func(m map[string]any) { m["job_id"] = "*" }},
		{"event of job with a 65-character id", schema.Event, "event_progress.json", func(m map[string]any) { m["job_id"] = strings.Repeat("a", 65) }},
		{"event without time", schema.Event, "event_progress.json", func(m map[string]any) { delete(m, "time") }},
		{"event time not in UTC", schema.Event, "event_progress.json", func(m map[string]any) { m["time"] = "2025-03-14T15:09:28.123456789+05:30" }},
		{"event time not a time", schema.Event, "event_progress.json", func(m map[string]any) { m["time"] = "yesterday" }},
		{"event of attempt 0", schema.Event, "event_progress.json", func(m map[string]any) { m["attempt"] = 0 }},
		{"event with current as text", schema.Event, "event_progress.json", func(m map[string]any) { m["current"] = "17" }},
		{"progress event of a queued job", schema.Event, "event_progress.json", func(m map[string]any) { m["status"] = "queued" }},
		{"progress event with a result", schema.Event, "event_progress.json", func(m map[string]any) { m["result"] = 1 }},
		{"progress event with an error", schema.Event, "event_progress.json", func(m map[string]any) {
			m["error"] = map[string]any{"code": "x", "message": "y"}
		}},
		{"succeeded event of a running job", schema.Event, "event_succeeded.json", func(m map[string]any) { m["status"] = "running" }},
		{"succeeded event without ended_at", schema.Event, "event_succeeded.json", func(m map[string]any) { delete(m, "ended_at") }},
		{"failed event without error", schema.Event, "event_failed.json", func(m map[string]any) { delete(m, "error") }},
		{"canceled event without error", schema.Event, "event_canceled.json", func(m map[string]any) { delete(m, "error") }},
		{"succeeded event with an error", schema.Event, "event_succeeded.json", func(m map[string]any) {
			m["error"] = map[string]any{"code": "x", "message": "y"}
		}},
		{"failed event with an error without message", schema.Event, "event_failed.json", func(m map[string]any) {
			m["error"] = map[string]any{"code": "x"}
		}},
		{"retrying event without next_attempt_at", schema.Event, "event_retrying.json", func(m map[string]any) { delete(m, "next_attempt_at") }},
		{"canceled event of a failed job", schema.Event, "event_canceled.json", func(m map[string]any) { m["status"] = "failed" }},
		{"log line on a progress event", schema.Event, "event_progress.json", func(m map[string]any) { m["log"] = "x" }},
		{"request without created_at", schema.Request, "request.json", func(m map[string]any) { delete(m, "created_at") }},
		{"request of job >", schema.Request, "request.json", func(m map[string]any) { m["id"] = ">" }},
		{"request of type a.b", schema.Request, "request.json", func(m map[string]any) { m["type"] = "a.b" }},
		{"request with an unknown field", schema.Request, "request.json", func(m map[string]any) { m["urgency"] = 1 }},
	}
	// A hand-back on runner shutdown is a retrying event without an error.
	handBack := edit(t, "event_retrying.json", func(m map[string]any) {
		delete(m, "error")
		m["message"] = "handed back: its runner shut down"
	})
	if err := validate(t, schema.Event, handBack); err != nil {
		t.Errorf("a hand-back event is rejected: %v", err)
	}
	// Each case's starting point is valid, so a rejection is due to the
	// change alone.
	for _, g := range []string{"event_progress.json", "event_succeeded.json", "event_failed.json", "event_retrying.json", "event_canceled.json"} {
		if err := validate(t, schema.Event, edit(t, g, func(map[string]any) {})); err != nil {
			t.Fatalf("%s is not valid: %v", g, err)
		}
	}
	for _, c := range cases {
		b := edit(t, c.golden, c.change)
		if err := validate(t, c.ref, b); err == nil {
			t.Errorf("%s: %s accepted %s", c.name, c.ref, b)
		}
	}

	// The HTTP and WebSocket schemas.
	for _, c := range []struct {
		name string
		ref  string
		good []string
		bad  []string
	}{
		{"submit", schema.Submit,
			[]string{`{"type":"demo"}`, `{"type":"demo","input":{"steps":3}}`, `{"type":"demo","input":null}`},
			[]string{`{}`, `{"input":{}}`, `{"type":"demo","priority":9}`, `{"type":"demo","urgency":1}`, `{"type":"a b"}`, `[]`}},
		{"snapshot", schema.Snapshot,
			[]string{`{"id":"a","status":"queued","seq":1,"updated_at":"2025-03-14T09:39:26Z","created_at":"2025-03-14T09:39:26.1Z","type":"demo"}`,
				`{"id":"a","status":"failed","seq":3,"updated_at":"2025-03-14T09:39:26Z","ended_at":"2025-03-14T09:39:26Z","error":{"code":"x","message":"y"}}`},
			[]string{`{"id":"a","status":"queued","seq":1}`,
				`{"id":"a","status":"exploded","seq":1,"updated_at":"2025-03-14T09:39:26Z"}`,
				`{"id":"a.b","status":"queued","seq":1,"updated_at":"2025-03-14T09:39:26Z"}`,
				`{"id":"a","status":"queued","seq":1,"updated_at":"2025-03-14T09:39:26Z","kind":"queued"}`,
				`{"id":"a","status":"failed","seq":3,"updated_at":"2025-03-14T09:39:26Z","ended_at":"2025-03-14T09:39:26Z"}`}},
		{"error", schema.Error,
			[]string{`{"error":{"code":"not_found","message":"no job with id x"}}`},
			[]string{`{"error":{"code":"not_found"}}`, `{"error":"not_found"}`, `{"error":{"code":"Not Found","message":"x"}}`, `{"code":"x","message":"y"}`}},
		{"ws-client", schema.WSClient,
			[]string{`{"op":"watch","job_id":"01JPA8ZV9N3Q6T8X2M4K7B5C1D"}`, `{"op":"unwatch","job_id":"a"}`, `{"op":"watch","job_id":"a","after_seq":7}`,
				`{"op":"watch_all"}`, `{"op":"unwatch_all"}`},
			[]string{`{"op":"explode","job_id":"a"}`, `{"op":"watch"}`, `{"op":"watch","job_id":"jobs.*"}`, `{"op":"watch","job_id":"a","after_seq":-1}`,
				`{"op":"watch","job_id":"a","x":1}`, `{"op":"unwatch"}`, `{"op":"watch_all","job_id":"a"}`, `{}`}},
		{"ws-server", schema.WSServer,
			[]string{`{"op":"error","job_id":"","code":"bad_request","message":"send JSON"}`,
				`{"op":"event","job_id":"a","event":{"job_id":"a","seq":1,"kind":"queued","status":"queued","time":"2025-03-14T09:39:26Z"}}`,
				`{"op":"event","job_id":"a","truncated":true,"event":{"job_id":"a","seq":1,"kind":"queued","status":"queued","time":"2025-03-14T09:39:26Z"}}`},
			[]string{`{"op":"error","job_id":"a","code":"exploded","message":"x"}`,
				`{"op":"event","job_id":"a","event":{"job_id":"a","seq":1,"kind":"exploded","status":"queued","time":"2025-03-14T09:39:26Z"}}`,
				`{"op":"event","job_id":"a"}`,
				`{"op":"event","job_id":"a","truncated":false,"event":{"job_id":"a","seq":1,"kind":"queued","status":"queued","time":"2025-03-14T09:39:26Z"}}`,
				`{"op":"hello","job_id":"a"}`}},
	} {
		for _, s := range c.good {
			if err := validate(t, c.ref, []byte(s)); err != nil {
				t.Errorf("%s rejected %s: %v", c.name, s, err)
			}
		}
		for _, s := range c.bad {
			if err := validate(t, c.ref, []byte(s)); err == nil {
				t.Errorf("%s accepted %s", c.name, s)
			}
		}
	}
}

func TestAsyncAPIChannelsAreTheContractSubjects(t *testing.T) {
	t.Parallel()
	doc := load(t, schema.AsyncAPI)
	if doc["asyncapi"] != "3.0.0" {
		t.Fatalf("asyncapi = %v, want 3.0.0", doc["asyncapi"])
	}
	channels := obj(t, doc, "channels")
	address := func(ch string) string {
		t.Helper()
		a, _ := obj(t, channels, ch)["address"].(string)
		return a
	}
	for _, c := range []struct{ channel, want, wildcard, all string }{
		{"jobProgress", jobs.ProgressSubject("{jobId}"), jobs.ProgressSubject("*"), jobs.AllProgress},
		{"jobEvents", jobs.EventSubject("{jobType}", "{jobId}"), jobs.EventSubject("*", "*"), jobs.AllEvents},
		{"jobCancel", jobs.CancelSubject("{jobId}"), jobs.CancelSubject("*"), jobs.AllCancel},
		{"jobQueue", jobs.QueueSubject("{jobType}", "{jobId}"), jobs.QueueSubject("*", "*"), jobs.AllQueue},
		// A key-value put is a message on $KV.<bucket>.<key>.
		{"jobTypes", "$KV." + jobs.TypesBucket + ".{jobType}", "", ""},
	} {
		if got := address(c.channel); got != c.want {
			t.Errorf("channel %s address = %q, want %q", c.channel, got, c.want)
		}
		// The documented wildcard is the one the code subscribes with.
		if c.wildcard != c.all {
			t.Errorf("%s: the parameter replaced by a wildcard gives %q, but the code uses %q", c.channel, c.wildcard, c.all)
		}
	}
	// The streams are named in the descriptions of their channels.
	for ch, stream := range map[string]string{"jobProgress": jobs.Stream, "jobEvents": jobs.Stream, "jobQueue": jobs.Stream} {
		desc, _ := obj(t, channels, ch)["description"].(string)
		if !regexp.MustCompile(`\bstream ` + stream + `\b`).MatchString(desc) {
			t.Errorf("channel %s does not name its stream %s: %q", ch, stream, desc)
		}
	}
	if !strings.Contains(channelDesc(t, channels, "jobQueue"), jobs.AllQueue) ||
		!strings.Contains(channelDesc(t, channels, "jobEvents"), jobs.AllEvents) ||
		!strings.Contains(channelDesc(t, channels, "jobProgress"), jobs.AllProgress) {
		t.Error("the stream subjects are not documented in the channel descriptions")
	}

	// Every {parameter} of an address is declared, and nothing else.
	param := regexp.MustCompile(`\{([^}]+)\}`)
	for name := range channels {
		ch := obj(t, channels, name)
		addr, _ := ch["address"].(string)
		var inAddr []string
		for _, m := range param.FindAllStringSubmatch(addr, -1) {
			inAddr = append(inAddr, m[1])
		}
		params, _ := ch["parameters"].(map[string]any)
		declared := slices.Sorted(maps.Keys(params))
		slices.Sort(inAddr)
		if !slices.Equal(inAddr, declared) {
			t.Errorf("channel %s: address parameters %q, declared %q", name, inAddr, declared)
		}
	}

	// Operations point at channels and at messages of those channels.
	ops := obj(t, doc, "operations")
	if len(ops) == 0 {
		t.Fatal("no operations")
	}
	actions := map[string]int{}
	for name, o := range ops {
		op := o.(map[string]any)
		action, _ := op["action"].(string)
		actions[action]++
		checkOpMessages(t, doc, "operation "+name, op)
		if reply, ok := op["reply"].(map[string]any); ok {
			checkOpMessages(t, doc, "reply of operation "+name, reply)
		}
	}
	if actions["send"] == 0 || actions["receive"] == 0 || actions["send"]+actions["receive"] != len(ops) {
		t.Errorf("operation actions %v: want only send and receive, both used", actions)
	}
	for _, ch := range []string{"jobProgress", "jobEvents", "jobCancel", "jobQueue", "jobTypes"} {
		var send, receive bool
		for _, o := range ops {
			op := o.(map[string]any)
			if ref(t, op["channel"]) == "#/channels/"+ch {
				send = send || op["action"] == "send"
				receive = receive || op["action"] == "receive"
			}
		}
		// Nobody publishes live events: the stream republishes stored ones.
		if wantSend := ch != "jobProgress"; send != wantSend || !receive {
			t.Errorf("channel %s: send %v, receive %v; want send %v and receive", ch, send, receive, wantSend)
		}
	}

	// Message examples satisfy their payload schemas.
	msgs := obj(t, obj(t, doc, "components"), "messages")
	for name, m := range msgs {
		msg := m.(map[string]any)
		payload := ref(t, msg["payload"])
		if _, err := resolve(doc, payload); err != nil {
			t.Errorf("message %s: payload %s: %v", name, payload, err)
			continue
		}
		sch, err := compileDraft7(t, schema.AsyncAPI+payload)
		if err != nil {
			t.Fatalf("message %s: %v", name, err)
		}
		examples, _ := msg["examples"].([]any)
		if len(examples) == 0 {
			t.Errorf("message %s has no examples", name)
		}
		for _, e := range examples {
			ex := e.(map[string]any)
			if err := sch.Validate(ex["payload"]); err != nil {
				t.Errorf("message %s example %v does not satisfy its payload schema: %v", name, ex["name"], err)
			}
		}
	}
}

func channelDesc(t *testing.T, channels map[string]any, name string) string {
	d, _ := obj(t, channels, name)["description"].(string)
	return d
}

// checkOpMessages checks that op (an operation or a reply) names a channel
// that exists and only messages of that channel.
func checkOpMessages(t *testing.T, doc map[string]any, what string, op map[string]any) {
	t.Helper()
	chRef := ref(t, op["channel"])
	ch, err := resolve(doc, chRef)
	if err != nil || !strings.HasPrefix(chRef, "#/channels/") {
		t.Errorf("%s: channel %q: %v", what, chRef, err)
		return
	}
	msgs, _ := op["messages"].([]any)
	if len(msgs) == 0 {
		t.Errorf("%s has no messages", what)
	}
	for _, m := range msgs {
		r := ref(t, m)
		if !strings.HasPrefix(r, chRef+"/messages/") {
			t.Errorf("%s: message %s is not one of its channel %s", what, r, chRef)
			continue
		}
		if _, ok := ch.(map[string]any)["messages"].(map[string]any)[strings.TrimPrefix(r, chRef+"/messages/")]; !ok {
			t.Errorf("%s: message %s does not exist", what, r)
		}
	}
}

// mirrors are the components of the API documents that must describe the
// same JSON as a standalone schema.
var mirrors = []struct{ doc, component, file string }{
	{schema.OpenAPI, "Event", schema.Event},
	{schema.OpenAPI, "Snapshot", schema.Snapshot},
	{schema.OpenAPI, "SubmitRequest", schema.Submit},
	{schema.OpenAPI, "ErrorResponse", schema.Error},
	{schema.OpenAPI, "WSClientMessage", schema.WSClient},
	{schema.OpenAPI, "WSServerMessage", schema.WSServer},
	{schema.AsyncAPI, "Event", schema.Event},
	{schema.AsyncAPI, "Request", schema.Request},
}

// TestComponentsMirrorSchemas keeps openapi.json and asyncapi.json (which
// must be self-contained) equal to the standalone schemas: with every $ref
// inlined and the annotations left out, both describe the same JSON.
func TestComponentsMirrorSchemas(t *testing.T) {
	t.Parallel()
	for _, m := range mirrors {
		comp := normalize(t, m.doc, "/components/schemas/"+m.component)
		file := normalize(t, m.file, "")
		if !reflect.DeepEqual(comp, file) {
			t.Errorf("%s component %s differs from %s (change both): %s", m.doc, m.component, m.file, firstDiff(comp, file, ""))
		}
	}
	// Shapes that have no standalone file are the same in both documents.
	for _, name := range []string{"TypeInfo", "Time", "JobError"} {
		a := normalize(t, schema.AsyncAPI, "/components/schemas/"+name)
		o := normalize(t, schema.OpenAPI, "/components/schemas/"+name)
		if !reflect.DeepEqual(a, o) {
			t.Errorf("component %s differs between asyncapi.json and openapi.json: %s", name, firstDiff(a, o, ""))
		}
	}
}

// firstDiff describes where a (the component) and b (the file) first differ.
func firstDiff(a, b any, path string) string {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			break
		}
		for _, k := range slices.Sorted(maps.Keys(x)) {
			if _, ok := y[k]; !ok {
				return fmt.Sprintf("%s/%s only in the component", path, k)
			}
			if !reflect.DeepEqual(x[k], y[k]) {
				return firstDiff(x[k], y[k], path+"/"+k)
			}
		}
		for k := range y {
			if _, ok := x[k]; !ok {
				return fmt.Sprintf("%s/%s only in the file", path, k)
			}
		}
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			break
		}
		for i := range x {
			if !reflect.DeepEqual(x[i], y[i]) {
				return firstDiff(x[i], y[i], fmt.Sprintf("%s/%d", path, i))
			}
		}
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return fmt.Sprintf("at %s the component has %s, the file %s", path, ja, jb)
}

// TestEveryRefResolves checks every $ref of every document: local ones
// against the document, others against the documents beside it.
func TestEveryRefResolves(t *testing.T) {
	t.Parallel()
	for _, name := range allDocs {
		walk(load(t, name), func(node map[string]any) {
			r, ok := node["$ref"].(string)
			if !ok {
				return
			}
			if _, _, err := follow(t, name, r); err != nil {
				t.Errorf("%s: $ref %q: %v", name, r, err)
			}
		})
	}
}

func TestEnumsAreTheGoConstants(t *testing.T) {
	t.Parallel()
	kinds := []jobs.Kind{jobs.KindScheduled, jobs.KindQueued, jobs.KindStarted, jobs.KindProgress, jobs.KindLog,
		jobs.KindRetrying, jobs.KindSucceeded, jobs.KindFailed, jobs.KindCanceled}
	statuses := []jobs.Status{jobs.StatusScheduled, jobs.StatusQueued, jobs.StatusRunning, jobs.StatusSucceeded, jobs.StatusFailed, jobs.StatusCanceled}
	for _, s := range statuses {
		if !s.Valid() {
			t.Fatalf("%s is not a valid status", s)
		}
	}
	strs := func(v any) []string {
		var out []string
		for _, x := range v.([]any) {
			out = append(out, x.(string))
		}
		return out
	}
	wantKinds := make([]string, len(kinds))
	for i, k := range kinds {
		wantKinds[i] = string(k)
	}
	wantStatuses := make([]string, len(statuses))
	for i, s := range statuses {
		wantStatuses[i] = string(s)
	}
	ev := load(t, schema.Event)
	props := obj(t, ev, "properties")
	if got := strs(obj(t, props, "kind")["enum"]); !slices.Equal(got, wantKinds) {
		t.Errorf("event kind enum %q, want %q", got, wantKinds)
	}
	for _, where := range []struct {
		doc, ptr string
	}{
		{schema.Event, "/properties/status/enum"},
		{schema.Snapshot, "/properties/status/enum"},
		{schema.OpenAPI, "/paths/~1api~1jobs/get/parameters/0/schema/enum"},
	} {
		v, err := resolve(load(t, where.doc), "#"+where.ptr)
		if err != nil {
			t.Fatalf("%s#%s: %v", where.doc, where.ptr, err)
		}
		if got := strs(v); !slices.Equal(got, wantStatuses) {
			t.Errorf("%s#%s = %q, want %q", where.doc, where.ptr, got, wantStatuses)
		}
	}
	// The id rule of the schemas is jobs.ValidateID.
	pattern := regexp.MustCompile(obj(t, props, "job_id")["pattern"].(string))
	for _, id := range []string{"a", "01JPA8ZV9N3Q6T8X2M4K7B5C1D", "a-b_C9", strings.Repeat("z", 64),
		"", "a.b", "*", ">", "a b", "a\tb", "ü", strings.Repeat("z", 65), "a/b", "a%2Eb"} {
		if got, want := pattern.MatchString(id), jobs.ValidateID(id) == nil; got != want {
			t.Errorf("id %q: schema pattern says %v, ValidateID says %v", id, got, want)
		}
	}
}

func TestOpenAPIExamplesValidate(t *testing.T) {
	t.Parallel()
	doc := load(t, schema.OpenAPI)
	if doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi = %v, want 3.1.0", doc["openapi"])
	}
	n := 0
	for path, item := range obj(t, doc, "paths") {
		for method, o := range item.(map[string]any) {
			op, ok := o.(map[string]any)
			if !ok || method == "parameters" {
				continue
			}
			body, _ := op["requestBody"].(map[string]any)
			content, _ := body["content"].(map[string]any)
			media, _ := content["application/json"].(map[string]any)
			examples, _ := media["examples"].(map[string]any)
			ptr := "#/paths/" + escape(path) + "/" + method + "/requestBody/content/application~1json/schema"
			for name, e := range examples {
				b, _ := json.Marshal(e.(map[string]any)["value"])
				if err := validate(t, schema.OpenAPI+ptr, b); err != nil {
					t.Errorf("%s %s example %s: %v", method, path, name, err)
				}
				n++
			}
		}
	}
	if n == 0 {
		t.Error("no request examples found")
	}
}

// --- helpers ---

func load(t *testing.T, name string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(schema.Bytes(name), &m); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return m
}

func obj(t *testing.T, m map[string]any, key string) map[string]any {
	t.Helper()
	v, ok := m[key].(map[string]any)
	if !ok {
		t.Fatalf("no object %q in %v", key, slices.Sorted(maps.Keys(m)))
	}
	return v
}

func components(t *testing.T, doc string) map[string]any {
	return obj(t, obj(t, load(t, doc), "components"), "schemas")
}

func ref(t *testing.T, v any) string {
	t.Helper()
	m, _ := v.(map[string]any)
	r, ok := m["$ref"].(string)
	if !ok {
		t.Fatalf("not a reference: %v", v)
	}
	return r
}

func escape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// resolve follows a local JSON pointer reference ("#/a/b") in doc.
func resolve(doc any, r string) (any, error) {
	ptr, ok := strings.CutPrefix(r, "#")
	if !ok {
		return nil, fmt.Errorf("%q is not a local reference", r)
	}
	cur := doc
	if ptr == "" {
		return cur, nil
	}
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[tok]
			if !ok {
				return nil, fmt.Errorf("%q: no %q", r, tok)
			}
			cur = v
		case []any:
			var i int
			if _, err := fmt.Sscan(tok, &i); err != nil || i < 0 || i >= len(c) {
				return nil, fmt.Errorf("%q: no index %q", r, tok)
			}
			cur = c[i]
		default:
			return nil, fmt.Errorf("%q: %q is inside a scalar", r, tok)
		}
	}
	return cur, nil
}

// follow resolves reference r made in document from: "#..." within it,
// "file.json#..." in the document beside it. It returns the target and the
// document it is in.
func follow(t *testing.T, from, r string) (any, string, error) {
	file, frag, _ := strings.Cut(r, "#")
	if file == "" {
		file = from
	}
	if !slices.Contains(allDocs, file) {
		return nil, "", fmt.Errorf("%q is not a document of the contract", file)
	}
	v, err := resolve(load(t, file), "#"+frag)
	return v, file, err
}

// annotations are left out when comparing schemas.
var annotations = map[string]bool{"$schema": true, "$id": true, "$defs": true, "$comment": true,
	"title": true, "description": true, "examples": true}

// normalize returns the schema at ptr of document doc with every $ref
// inlined and the annotations left out.
func normalize(t *testing.T, doc, ptr string) any {
	t.Helper()
	v, err := resolve(load(t, doc), "#"+ptr)
	if err != nil {
		t.Fatal(err)
	}
	return inline(t, doc, v, 0)
}

func inline(t *testing.T, doc string, v any, depth int) any {
	t.Helper()
	if depth > 50 {
		t.Fatalf("%s: references nest too deep (a cycle?)", doc)
	}
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, val := range x {
			if !annotations[k] && k != "$ref" {
				out[k] = inline(t, doc, val, depth+1)
			}
		}
		r, ok := x["$ref"].(string)
		if !ok {
			return out
		}
		target, tdoc, err := follow(t, doc, r)
		if err != nil {
			t.Fatalf("%s: $ref %q: %v", doc, r, err)
		}
		resolved := inline(t, tdoc, target, depth+1)
		if len(out) == 0 {
			return resolved
		}
		out["allOf"] = append([]any{resolved}, anySlice(out["allOf"])...)
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = inline(t, doc, e, depth+1)
		}
		return out
	}
	return v
}

func anySlice(v any) []any {
	s, _ := v.([]any)
	return s
}

func walk(v any, f func(map[string]any)) {
	switch x := v.(type) {
	case map[string]any:
		f(x)
		for _, e := range x {
			walk(e, f)
		}
	case []any:
		for _, e := range x {
			walk(e, f)
		}
	}
}

// validate checks the JSON b against the schema at ref (relative to
// schema.BaseURI).
func validate(t *testing.T, ref string, b []byte) error {
	t.Helper()
	sch, err := schema.Compile(ref)
	if err != nil {
		t.Fatalf("compile %s: %v", ref, err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return err
	}
	return sch.Validate(v)
}

// compileDraft7 compiles a part of a document the way AsyncAPI tools read
// schemas: as JSON Schema draft-07.
func compileDraft7(t *testing.T, ref string) (*jsonschema.Schema, error) {
	t.Helper()
	c, err := schema.NewCompiler()
	if err != nil {
		t.Fatal(err)
	}
	c.DefaultDraft(jsonschema.Draft7)
	return c.Compile(schema.BaseURI + ref)
}
