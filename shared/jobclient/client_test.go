package jobclient_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jobwire/jobwire/internal/natstest"
	"github.com/jobwire/jobwire/shared/jobclient"
	"github.com/jobwire/jobwire/shared/jobs"
	"github.com/nats-io/nats.go/jetstream"
)

// storedMessages counts the messages in jobwire's jobs stream.
func storedMessages(t *testing.T, s *system) uint64 {
	t.Helper()
	ctx := testContext(t, 10*time.Second)
	var n uint64
	for _, name := range []string{jobs.Stream} {
		st, err := s.js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n += info.State.Msgs
	}
	return n
}

func TestNewNilConn(t *testing.T) {
	t.Parallel()
	if _, err := jobclient.New(nil); err == nil {
		t.Fatal("New(nil) succeeded")
	}
}

func TestSubmitUnknownType(t *testing.T) {
	t.Parallel()
	s := startSystem(t)
	ctx := testContext(t, 10*time.Second)

	_, err := s.client.Submit(ctx, "no-such-type", map[string]any{})
	if !errors.Is(err, jobclient.ErrUnknownType) {
		t.Fatalf("unregistered type: err = %v, want ErrUnknownType", err)
	}
	if !strings.Contains(err.Error(), "no-such-type") {
		t.Errorf("error %q does not name the type", err)
	}
	for _, typ := range []string{"", "demo.x", "*", ">", "de mo", strings.Repeat("a", 65)} {
		_, err := s.client.Submit(ctx, typ, nil)
		if !errors.Is(err, jobclient.ErrUnknownType) || !errors.Is(err, jobs.ErrInvalidID) {
			t.Errorf("type %q: err = %v, want ErrUnknownType and jobs.ErrInvalidID", typ, err)
		}
	}
	if n := storedMessages(t, s); n != 0 {
		t.Fatalf("refused submissions stored %d messages", n)
	}
}

func TestSubmitInvalidInput(t *testing.T) {
	t.Parallel()
	s := startSystem(t)
	ctx := testContext(t, 10*time.Second)

	for _, tc := range []struct {
		name   string
		input  any
		reason string // part of the error message
	}{
		{"below minimum", map[string]any{"steps": 0}, "/steps"},
		{"wrong type", map[string]any{"steps": "three"}, "/steps"},
		{"unknown property", map[string]any{"steps": 1, "colour": "red"}, "colour"},
		{"not an object", json.RawMessage(`[1,2]`), "/"},
		{"null", json.RawMessage(`null`), "/"},
		{"not JSON", json.RawMessage(`{"steps":`), ""},
		{"does not encode", map[string]any{"steps": make(chan int)}, "chan"},
	} {
		_, err := s.client.Submit(ctx, "demo", tc.input)
		if !errors.Is(err, jobclient.ErrInvalidInput) {
			t.Errorf("%s: err = %v, want ErrInvalidInput", tc.name, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("%s: error %q does not say why (%q)", tc.name, err, tc.reason)
		}
	}

	big := strings.Repeat("x", int(s.nc.MaxPayload()))
	registerType(t, s, jobs.TypeInfo{Type: "anything"})
	if _, err := s.client.Submit(ctx, "anything", map[string]string{"blob": big}); !errors.Is(err, jobclient.ErrInvalidInput) {
		t.Errorf("oversized input: err = %v, want ErrInvalidInput", err)
	}

	if n := storedMessages(t, s); n != 0 {
		t.Fatalf("refused submissions stored %d messages", n)
	}
}

func TestSubmitRunsJob(t *testing.T) {
	t.Parallel()
	s := startSystem(t)
	ctx := testContext(t, 30*time.Second)

	before := time.Now()
	queued, err := s.client.Submit(ctx, "demo", map[string]int{"steps": 3, "step_ms": 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := jobs.ValidateID(queued.JobID); err != nil {
		t.Fatalf("job id: %v", err)
	}
	if queued.Seq != 1 || queued.Kind != jobs.KindQueued || queued.Status != jobs.StatusQueued || queued.Type != "demo" {
		t.Fatalf("queued event = %+v", queued)
	}
	if queued.CreatedAt == nil || queued.CreatedAt.Before(before.Add(-time.Second)) {
		t.Fatalf("created_at = %v, want about %v", queued.CreatedAt, before)
	}

	got, err := s.client.Get(ctx, queued.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if got.JobID != queued.JobID || got.Seq < 1 {
		t.Fatalf("Get = %+v", got)
	}

	final := waitTerminal(t, s.client, queued.JobID)
	if final.Status != jobs.StatusSucceeded || string(final.Result) != `{"steps":3}` || final.Current != 3 || final.Total != 3 {
		t.Fatalf("final state = %+v (result %s)", final, final.Result)
	}

	// Raw JSON input is taken as it is.
	raw, err := s.client.Submit(ctx, "demo", json.RawMessage(`{"steps": 1, "step_ms": 0}`))
	if err != nil {
		t.Fatal(err)
	}
	if final := waitTerminal(t, s.client, raw.JobID); string(final.Result) != `{"steps":1}` {
		t.Fatalf("raw input: final state = %+v (result %s)", final, final.Result)
	}
}

// A type's registration is read on every submit: a changed schema applies
// at once, and a type no runner registers any more is refused.
func TestSubmitFollowsRegistration(t *testing.T) {
	t.Parallel()
	s := startBare(t)
	ctx := testContext(t, 10*time.Second)

	registerType(t, s, jobs.TypeInfo{Type: "resize", InputSchema: json.RawMessage(`{"type":"object","required":["url"]}`)})
	if _, err := s.client.Submit(ctx, "resize", nil); !errors.Is(err, jobclient.ErrInvalidInput) || !strings.Contains(err.Error(), "url") {
		t.Fatalf("missing required property: err = %v, want ErrInvalidInput naming url", err)
	}
	if _, err := s.client.Submit(ctx, "resize", map[string]string{"url": "a.png"}); err != nil {
		t.Fatal(err)
	}

	registerType(t, s, jobs.TypeInfo{Type: "resize", InputSchema: json.RawMessage(`{"type":"object"}`)})
	if _, err := s.client.Submit(ctx, "resize", nil); err != nil {
		t.Fatalf("after the schema changed: %v", err)
	}

	registerType(t, s, jobs.TypeInfo{Type: "broken", InputSchema: json.RawMessage(`{"type":"no-such-json-type"}`)})
	if _, err := s.client.Submit(ctx, "broken", nil); !errors.Is(err, jobclient.ErrUnknownType) {
		t.Fatalf("unusable schema: err = %v, want ErrUnknownType", err)
	}

	kv, err := s.js.KeyValue(ctx, jobs.TypesBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "resize"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.Submit(ctx, "resize", nil); !errors.Is(err, jobclient.ErrUnknownType) {
		t.Fatalf("deregistered type: err = %v, want ErrUnknownType", err)
	}
}

// The client never creates jobwire's streams or buckets.
func TestNoTopology(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t)
	nc := natstest.Connect(t, srv)
	c := newClient(t, nc)
	ctx := testContext(t, 10*time.Second)

	if _, err := c.Submit(ctx, "demo", nil); !errors.Is(err, jobclient.ErrUnknownType) {
		t.Errorf("Submit: err = %v, want ErrUnknownType", err)
	}
	id := jobs.NewID(time.Now())
	if _, err := c.Get(ctx, id); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("Get: err = %v, want jetstream.ErrStreamNotFound", err)
	}
	if _, err := collect(t, c.Watch(ctx, id, 0)); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("Watch: err = %v, want jetstream.ErrStreamNotFound", err)
	}

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	names := js.StreamNames(ctx)
	var streams []string
	for n := range names.Name() {
		streams = append(streams, n)
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	if len(streams) != 0 {
		t.Fatalf("the client created streams: %v", streams)
	}
}

func TestGetErrors(t *testing.T) {
	t.Parallel()
	s := startBare(t)
	ctx := testContext(t, 10*time.Second)

	if _, err := s.client.Get(ctx, jobs.NewID(time.Now())); !errors.Is(err, jobs.ErrNotFound) {
		t.Errorf("unknown job: err = %v, want jobs.ErrNotFound", err)
	}
	for _, id := range []string{"", "a.b", "*", ">", "jobs.*", "a b", "a\nb", strings.Repeat("a", 65)} {
		if _, err := s.client.Get(ctx, id); !errors.Is(err, jobs.ErrInvalidID) {
			t.Errorf("id %q: err = %v, want jobs.ErrInvalidID", id, err)
		}
	}
}

// SubmitMany submits the good jobs of a batch and says why each bad one
// was refused, in order; the good ones run.
func TestSubmitManyRunsTheGoodJobs(t *testing.T) {
	t.Parallel()
	s := startSystem(t)
	ctx := testContext(t, 30*time.Second)
	got := s.client.SubmitMany(ctx, []jobclient.Job{
		{Type: "demo", Input: map[string]int{"steps": 2, "step_ms": 1}},
		{Type: "nosuch"},
		{Type: "demo", Input: map[string]any{"steps": "many"}},
		{Type: "demo", Input: json.RawMessage(`{"steps": 1, "step_ms": 0}`)},
	})
	if len(got) != 4 {
		t.Fatalf("%d outcomes, want 4", len(got))
	}
	if !errors.Is(got[1].Err, jobclient.ErrUnknownType) || !errors.Is(got[2].Err, jobclient.ErrInvalidInput) {
		t.Errorf("bad jobs: %v, %v; want ErrUnknownType, ErrInvalidInput", got[1].Err, got[2].Err)
	}
	for _, i := range []int{0, 3} {
		if got[i].Err != nil || got[i].Event.Kind != jobs.KindQueued || got[i].Event.Seq != 1 {
			t.Fatalf("job %d: %+v", i, got[i])
		}
		if final := waitTerminal(t, s.client, got[i].Event.JobID); final.Status != jobs.StatusSucceeded {
			t.Errorf("job %d ended %s", i, final.Status)
		}
	}
	if got[0].Event.JobID == got[3].Event.JobID {
		t.Error("two jobs of a batch share an id")
	}
}
